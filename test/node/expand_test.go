package node

import (
	"strings"
	"testing"
)

func TestExpandLikeTheKubelet(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "$(A)", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"plain":            "plain",
		"$(A)":             "a",
		"x$(A)y$(A)":       "xaya",
		"$(B)":             "$(A)", // no recursion
		"$$(A)":            "$(A)",
		"$(MISSING)":       "$(MISSING)",
		"$(A":              "$(A",
		"$":                "$",
		"a$b":              "a$b",
		"$(EMPTY)!":        "!",
		"$()":              "$()",
		"$$$(A)":           "$a",
		"--port=$(A):8080": "--port=a:8080",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "$(A)", "$$", "$(", "$(A)$(B", "x$(A)y", "$$(A)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := expand(s, func(string) (string, bool) { return "", false })
		// With nothing known, text is only ever kept or shortened ($$ to $).
		if len(got) > len(s) || (!strings.Contains(s, "$$") && got != s) {
			t.Fatalf("expand(%q) with no variables = %q", s, got)
		}
		_ = expand(s, func(k string) (string, bool) { return k, true })
	})
}
