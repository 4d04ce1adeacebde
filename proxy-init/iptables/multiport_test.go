package iptables

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

func TestMultiportGroupsHoldAtMostFifteenPorts(t *testing.T) {
	var many []string
	for p := 1000; p < 1020; p++ {
		many = append(many, fmt.Sprint(p))
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"one", "25", []string{"25"}},
		{"range uses colon", "25,8000-9000", []string{"25,8000:9000"}},
		{"twenty singles", strings.Join(many, ","), []string{
			"1000,1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,1012,1013,1014",
			"1015,1016,1017,1018,1019",
		}},
		// 13 singles + a range (2 slots) = 15: one group; one more single starts a new one.
		{"range counts two", "1-2,10,11,12,13,14,15,16,17,18,19,20,21,22,23", []string{
			"1:2,10,11,12,13,14,15,16,17,18,19,20,21,22",
			"23",
		}},
		{"eight ranges", "1-2,3-4,5-6,7-8,9-10,11-12,13-14,15-16", []string{
			"1:2,3:4,5:6,7:8,9:10,11:12,13:14",
			"15:16",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := proxyconf.ParsePorts(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := multiport(l)
			if !slices.Equal(got, tc.want) {
				t.Errorf("multiport(%q) =\n%q\nwant\n%q", tc.in, got, tc.want)
			}
		})
	}
}
