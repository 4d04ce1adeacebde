package iptables

import (
	"reflect"
	"strings"
	"testing"
)

func TestBackendsFromModeAndPaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got       func() ([]Backend, error)
		want      []Backend
		wantError string
	}{
		{"legacy with IPv6", func() ([]Backend, error) { return ModeBackends(ModeLegacy, true) }, []Backend{
			{IPv4, "iptables-legacy-save", "iptables-legacy-restore"},
			{IPv6, "ip6tables-legacy-save", "ip6tables-legacy-restore"},
		}, ""},
		{"nft without IPv6", func() ([]Backend, error) { return ModeBackends(ModeNFT, false) }, []Backend{
			{IPv4, "iptables-nft-save", "iptables-nft-restore"},
		}, ""},
		{"unknown mode", func() ([]Backend, error) { return ModeBackends("ebpf", true) }, nil, `"ebpf" is not supported`},
		{"firewall paths", func() ([]Backend, error) {
			return PathBackends("/usr/sbin/iptables-nft", "/usr/sbin/iptables-nft-save", true)
		}, []Backend{
			{IPv4, "/usr/sbin/iptables-nft-save", "/usr/sbin/iptables-nft-restore"},
			{IPv6, "/usr/sbin/ip6tables-nft-save", "/usr/sbin/ip6tables-nft-restore"},
		}, ""},
		{"unguessable IPv6 binary", func() ([]Backend, error) { return PathBackends("/opt/xt", "/opt/xt-save", true) }, nil, "/opt/xt"},
		{"empty path", func() ([]Backend, error) { return PathBackends("", "x", false) }, nil, "empty"},
	} {
		got, err := tc.got()
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.wantError)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
