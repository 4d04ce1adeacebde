package network

import (
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		cidr    string
		except  []string
		want    string
		wantErr string
	}{
		{cidr: "10.0.0.0/8", want: "10.0.0.0/8"},
		{cidr: "10.1.2.3/8", want: "10.0.0.0/8"},
		{cidr: "10.1.2.3", want: "10.1.2.3/32"},
		{cidr: "fd00::1/8", want: "fd00::/8"},
		{cidr: " 192.168.0.0/16 ", except: []string{"192.168.1.0/24"}, want: "192.168.0.0/16"},
		{cidr: "10.0.0.0/33", wantErr: "cidr"},
		{cidr: "", wantErr: "cidr"},
		{cidr: "nope", wantErr: `"nope"`},
		{cidr: "10.0.0.0/8", except: []string{"10.1.0.0/16", "bad"}, wantErr: "except[1]"},
	} {
		n, err := Parse(tc.cidr, tc.except)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q, %q) error = %v, want it to name %q", tc.cidr, tc.except, err, tc.wantErr)
			}
			continue
		}
		if err != nil || n.Net.String() != tc.want || len(n.Except) != len(tc.except) {
			t.Errorf("Parse(%q, %q) = %v, %v; want %s", tc.cidr, tc.except, n, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::/0", "1.2.3.4", "::ffff:1.2.3.4/104", "/", "1.2.3.4/-1", "0.0.0.0/0%eth0"} {
		f.Add(s, "10.1.0.0/16")
	}
	f.Fuzz(func(t *testing.T, cidr, except string) {
		n, err := Parse(cidr, []string{except})
		if err != nil {
			return
		}
		if !n.Net.IsValid() || n.Net != n.Net.Masked() {
			t.Fatalf("Parse(%q) = %v: invalid or unmasked", cidr, n.Net)
		}
		again, err := proxyconf.ParseNetwork(n.Net.String())
		if err != nil || again != n.Net {
			t.Fatalf("re-parse of %v = %v, %v", n.Net, again, err)
		}
	})
}
