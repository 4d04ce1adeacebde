package proxyconf

import (
	"fmt"
	"strings"
	"testing"
)

// TestParseNetworks pins the one reading of a network list. Before it had one home, proxy-init
// rejected a bare address that the policy controller and the proxy accepted, and an empty
// item was an error for the policy controller but skipped by the proxy.
func TestParseNetworks(t *testing.T) {
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
		{in: "10.0.0.1", want: "[10.0.0.1/32]"},        // a bare address is that host
		{in: "fd00::1", want: "[fd00::1/128]"},         // in either family
		{in: "::ffff:10.0.0.1", want: "[10.0.0.1/32]"}, // a mapped address is the IPv4 one
		{in: "::ffff:10.0.0.0/104", want: "[10.0.0.0/8]"},
		{in: "10.0.0.0/8,", want: "[10.0.0.0/8]"}, // a trailing comma is ignored
		{in: ",,10.0.0.0/8", want: "[10.0.0.0/8]"},
		{in: "10.0.0.0/33", wantErr: `"10.0.0.0/33" is not a CIDR prefix`},
		{in: "10.0.0/8", wantErr: "is not a CIDR prefix"},
		{in: "example.com/8", wantErr: "is not a CIDR prefix"},
		{in: "example.com", wantErr: "neither a CIDR prefix nor an IP address"},
		{in: "::ffff:0:0/80", wantErr: "IPv4-mapped"},
		{in: "fe80::%eth0/64", wantErr: "is not a CIDR prefix"},
		{in: "fe80::1%eth0", wantErr: "zone"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseNetworks(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseNetworks(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNetworks(%q): %v", tc.in, err)
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Errorf("ParseNetworks(%q) = %s, want %s", tc.in, s, tc.want)
			}
		})
	}
}

func TestSplitNetworksByFamily(t *testing.T) {
	ps, err := ParseNetworks("fd00::/8,10.0.0.0/8,192.168.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := SplitNetworks(ps)
	if fmt.Sprint(v4) != "[10.0.0.0/8 192.168.0.0/16]" || fmt.Sprint(v6) != "[fd00::/8]" {
		t.Errorf("SplitNetworks = %v, %v", v4, v6)
	}
}

// FuzzParseNetworks checks that no input crashes ParseNetworks and that every accepted
// prefix is valid, masked, unzoned and not IPv4-mapped, and survives a round trip.
func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "10.0.0.0/8,192.168.1.0/24", "fd00::/8", "10.1.2.3/8",
		"::ffff:1.2.3.4/128", "1.2.3.4", "/", ",", "1.2.3.4/-1", "fe80::1%x/64", "::ffff:0:0/95"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseNetworks(s)
		if err != nil {
			return
		}
		var parts []string
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("ParseNetworks(%q) accepted %v", s, p)
			}
			parts = append(parts, p.String())
		}
		again, err := ParseNetworks(strings.Join(parts, ","))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(ps) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}
