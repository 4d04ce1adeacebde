package routematch

import "testing"

func TestNormalizePath(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"", "", true},
		{"/admin", "/admin", true},
		{"/.well-known/x", "/.well-known/x", true},
		{"/a.b/c..d/...", "/a.b/c..d/...", true},
		{"/%61dmin", "/admin", true},
		{"/%61%64%6d%69%6E", "/admin", true},
		{"/a%2d%2E%5f%7E", "/a-._~", true},
		{"/caf%c3%a9", "/caf%C3%A9", true},
		{"/a%20b%3f", "/a%20b%3F", true},
		{"/a%3Bb", "/a%3Bb", true},
		// Unsafe: applications disagree on what these name.
		{"/public/../admin", "/public/../admin", false},
		{"/./admin", "/./admin", false},
		{"/admin/.", "/admin/.", false},
		{"/admin/..", "/admin/..", false},
		{"/public/%2e%2E/admin", "/public/../admin", false},
		{"/public/.%2e/admin", "/public/../admin", false},
		{"/admin%2Fx", "/admin%2Fx", false},
		{"/admin%2fx", "/admin%2Fx", false},
		{"/admin%5cx", "/admin%5Cx", false},
		{"/admin\\x", "/admin\\x", false},
		{"/admin%00", "/admin%00", false},
		{"/%zz", "/%zz", false},
		{"/%6", "/%6", false},
		{"/a%", "/a%", false},
	} {
		got, ok := NormalizePath(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// A normal path costs no allocation.
func TestNormalizePathNoAlloc(t *testing.T) {
	for _, p := range []string{"/", "/api/v1/users/42", "/.well-known/acme"} {
		if n := testing.AllocsPerRun(100, func() { NormalizePath(p) }); n != 0 {
			t.Errorf("NormalizePath(%q): %v allocations", p, n)
		}
	}
}
