package proxyconf

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Ports.String of the result
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
		{in: "25,", want: "25"},   // a trailing comma is ignored
		{in: ",25,,", want: "25"}, // so are empty items
		{in: "9000-8000", wantErr: "start 9000 is above end 8000"},
		{in: "1-2-3", wantErr: `"2-3" is not a port number`},
		{in: "80 90", wantErr: `"80 90" is not a port number`},
		{in: "8000-", wantErr: "missing port number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePorts(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePorts(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
					t.Errorf("error %q does not quote the list %q", err, tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tc.in, err)
			}
			if got.String() != tc.want {
				t.Errorf("ParsePorts(%q) = %q, want %q", tc.in, got.String(), tc.want)
			}
		})
	}
}

func TestJoinPortsMergesLists(t *testing.T) {
	a, _ := ParsePorts("4190,4191")
	b, _ := ParsePorts("4191,4567-4568")
	if got := JoinPorts(a, b).String(); got != "4190,4191,4567-4568" {
		t.Errorf("Join = %q", got)
	}
	if !JoinPorts(a, b).Contains(4568) || JoinPorts(a, b).Contains(4192) {
		t.Error("Contains disagrees with the list")
	}
}

// FuzzParsePorts checks that no input crashes ParsePorts, that every accepted list is
// normalised, and that rendering and parsing again gives the same list.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"", "25", "4190,4191,4567,4568", "8000-9000", "25,587,8000-9000",
		"0", "65536", "1-2-3", ",", "9000-8000", " 1 , 2 ", "1-65535,5", "\x00", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParsePorts(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for i, r := range l {
			if r.Lo == 0 || r.Lo > r.Hi {
				t.Fatalf("ParsePorts(%q) gave bad range %v", s, r)
			}
			if i > 0 && l[i-1].Hi >= r.Lo {
				t.Fatalf("ParsePorts(%q) not normalised: %v", s, l)
			}
		}
		again, err := ParsePorts(l.String())
		if err != nil || !slices.Equal(again, l) {
			t.Fatalf("round trip of %q: %v, %v; want %v", s, again, err, l)
		}
	})
}
