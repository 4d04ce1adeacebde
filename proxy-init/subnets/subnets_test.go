package subnets

import (
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "", want: "[]"},
		{in: "10.0.0.0/8,192.168.1.0/24", want: "[10.0.0.0/8 192.168.1.0/24]"},
		{in: " 192.168.1.0/24 , 10.0.0.0/8 ", want: "[10.0.0.0/8 192.168.1.0/24]"},
		{in: "10.1.2.3/8", want: "[10.0.0.0/8]"},
		{in: "fd00::/8,10.0.0.0/8", want: "[10.0.0.0/8 fd00::/8]"},
		{in: "10.244.0.3/32,10.244.0.3/32", want: "[10.244.0.3/32]"},
		{in: "0.0.0.0/0,::/0", want: "[0.0.0.0/0 ::/0]"},
		{in: "10.0.0.1", wantErr: "missing /bits"},
		{in: "10.0.0.0/33", wantErr: `"10.0.0.0/33" is not a CIDR prefix`},
		{in: "10.0.0/8", wantErr: "is not a CIDR prefix"},
		{in: "example.com/8", wantErr: "is not a CIDR prefix"},
		{in: "::ffff:10.0.0.0/104", wantErr: "IPv4-mapped"},
		{in: "10.0.0.0/8,", wantErr: "item 2 is empty"},
		{in: "fe80::%eth0/64", wantErr: "is not a CIDR prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Errorf("Parse(%q) = %s, want %s", tc.in, s, tc.want)
			}
		})
	}
}

func TestSplitByFamily(t *testing.T) {
	ps, err := Parse("fd00::/8,10.0.0.0/8,192.168.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := Split(ps)
	if fmt.Sprint(v4) != "[10.0.0.0/8 192.168.0.0/16]" || fmt.Sprint(v6) != "[fd00::/8]" {
		t.Errorf("Split = %v, %v", v4, v6)
	}
}

// FuzzParse checks that no input crashes Parse and that every accepted prefix is masked,
// unzoned and not IPv4-mapped, and survives a round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "10.0.0.0/8,192.168.1.0/24", "fd00::/8", "10.1.2.3/8",
		"::ffff:1.2.3.4/128", "1.2.3.4", "/", ",", "1.2.3.4/-1", "fe80::1%x/64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := Parse(s)
		if err != nil {
			return
		}
		var parts []string
		for _, p := range ps {
			if p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("Parse(%q) accepted %v", s, p)
			}
			parts = append(parts, p.String())
		}
		again, err := Parse(strings.Join(parts, ","))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(ps) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}
