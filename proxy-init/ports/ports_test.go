package ports

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string // List.String of the result
		wantErr string // substring of the error
	}{
		{in: "", want: ""},
		{in: "   ", want: ""},
		{in: "25", want: "25"},
		{in: "4190,4191,4567,4568", want: "4190,4191,4567,4568"},
		{in: " 3300 , 9900 ", want: "3300,9900"},
		{in: "8000-9000", want: "8000-9000"},
		{in: "25,587,8000-9000", want: "25,587,8000-9000"},
		{in: "9000,25", want: "25,9000"},                    // sorted
		{in: "25,25", want: "25"},                           // duplicates dropped
		{in: "8000-9000,8500,8999-9100", want: "8000-9100"}, // overlaps merged
		{in: "1-65535", want: "1-65535"},
		{in: "7-7", want: "7"},
		{in: "80 - 90", want: "80-90"},
		{in: "0", wantErr: `port "0" is out of range`},
		{in: "65536", wantErr: `port "65536" is out of range`},
		{in: "99999999999999999999", wantErr: "out of range"},
		{in: "http", wantErr: `"http" is not a port number`},
		{in: "-1", wantErr: "missing port number"},
		{in: "+80", wantErr: `"+80" is not a port number`},
		{in: "25,", wantErr: "item 2 is empty"},
		{in: ",25", wantErr: "item 1 is empty"},
		{in: "9000-8000", wantErr: "start 9000 is above end 8000"},
		{in: "1-2-3", wantErr: `"2-3" is not a port number`},
		{in: "80 90", wantErr: `"80 90" is not a port number`},
		{in: "8000-", wantErr: "missing port number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
					t.Errorf("error %q does not quote the list %q", err, tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got.String() != tc.want {
				t.Errorf("Parse(%q) = %q, want %q", tc.in, got.String(), tc.want)
			}
		})
	}
}

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
			l, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := l.Multiport()
			if !slices.Equal(got, tc.want) {
				t.Errorf("Multiport(%q) =\n%q\nwant\n%q", tc.in, got, tc.want)
			}
		})
	}
}

func TestJoinMergesLists(t *testing.T) {
	a, _ := Parse("4190,4191")
	b, _ := Parse("4191,4567-4568")
	if got := Join(a, b).String(); got != "4190,4191,4567-4568" {
		t.Errorf("Join = %q", got)
	}
	if !Join(a, b).Contains(4568) || Join(a, b).Contains(4192) {
		t.Error("Contains disagrees with the list")
	}
}

// FuzzParse checks that no input crashes Parse, that every accepted list is normalised and
// fits multiport groups, and that rendering and parsing again gives the same list.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "25", "4190,4191,4567,4568", "8000-9000", "25,587,8000-9000",
		"0", "65536", "1-2-3", ",", "9000-8000", " 1 , 2 ", "1-65535,5", "\x00", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for i, r := range l {
			if r.Lo == 0 || r.Lo > r.Hi {
				t.Fatalf("Parse(%q) gave bad range %v", s, r)
			}
			if i > 0 && l[i-1].Hi >= r.Lo {
				t.Fatalf("Parse(%q) not normalised: %v", s, l)
			}
		}
		for _, g := range l.Multiport() {
			n := 0
			for _, item := range strings.Split(g, ",") {
				n++
				if strings.Contains(item, ":") {
					n++
				}
			}
			if n > MaxMultiport {
				t.Fatalf("group %q takes %d multiport slots", g, n)
			}
		}
		again, err := Parse(l.String())
		if err != nil || !slices.Equal(again, l) {
			t.Fatalf("round trip of %q: %v, %v; want %v", s, again, err, l)
		}
	})
}
