package config

import "testing"

// The parsers below read environment values, a trust boundary: they must never panic and
// must either return an error or a value consistent with the input.

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"100ms", "10s", "0", "1d", "", "x", "99999999999999999999s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("negative duration %v from %q", d, s)
		}
	})
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"25,587", "1-65535", "", ",", "5-3", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParsePorts(s)
		if err == nil && set.Has(0) {
			t.Fatalf("port 0 accepted from %q", s)
		}
	})
}

func FuzzParseLogLevel(f *testing.F) {
	for _, s := range []string{"warn,linkerd=info", "linkerd[x]=debug", "=", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseLogLevel(s) })
}

func FuzzParseHostPort(f *testing.F) {
	for _, s := range []string{"a.b:1", "[::1]:2", "1.2.3.4:5", ":", "[:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseHostPort(s) })
}

func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8,fd00::/8", "1.2.3.4", "/", "::/129"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseNetworks(s) })
}
