package proxyconf

import (
	"strings"
	"testing"
)

// TestParseOpaquePorts pins Linkerd's reading of config.linkerd.io/opaque-ports: names are
// resolved (before, destination ignored a named port the policy controller accepted), a
// name that looks like a range wins, and a bad item is skipped without losing the others.
func TestParseOpaquePorts(t *testing.T) {
	named := func(name string) (uint16, bool) {
		switch name {
		case "mysql":
			return 3306, true
		case "100-200": // a valid port name that is also a valid range
			return 9999, true
		}
		return 0, false
	}
	tests := []struct {
		in, want string
		skipped  []string
	}{
		{in: "", want: ""},
		{in: "4444", want: "4444"},
		{in: "mysql,8080", want: "3306,8080"},
		{in: "100-200", want: "9999"},
		{in: "100-201", want: "100-201"},
		{in: "8080,redis,0,9000", want: "8080,9000", skipped: []string{`"redis"`, `"0"`}},
		{in: "5432,", want: "5432"},
	}
	for _, tc := range tests {
		got, skipped := ParseOpaquePorts(tc.in, named)
		if got.String() != tc.want {
			t.Errorf("ParseOpaquePorts(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if len(skipped) != len(tc.skipped) {
			t.Fatalf("ParseOpaquePorts(%q) skipped %v, want %d items", tc.in, skipped, len(tc.skipped))
		}
		for i, s := range tc.skipped {
			if !strings.Contains(skipped[i].Error(), s) {
				t.Errorf("skipped[%d] = %v, want it to name %s", i, skipped[i], s)
			}
		}
	}
	if got, _ := ParseOpaquePorts("mysql", nil); len(got) != 0 {
		t.Errorf("a name without a resolver = %v, want nothing", got)
	}
	if def, err := ParsePorts(DefaultOpaquePorts); err != nil || def.String() != DefaultOpaquePorts {
		t.Errorf("DefaultOpaquePorts is not in normal form (%v)", err)
	}
}
