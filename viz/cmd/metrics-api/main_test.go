package main

import (
	"context"
	"strings"
	"testing"
)

// TestBadFlags: bad configuration fails at start, naming the setting.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-prometheus-url is required"},
		{[]string{"-prometheus-url=prometheus:9090"}, `-prometheus-url "prometheus:9090": want an http(s) URL`},
		{[]string{"-prometheus-url=http://p:9090", "-log-level=loud"}, "loud"},
		{[]string{"-prometheus-url=http://p:9090", "-kubeconfig=/nonexistent"}, "-kubeconfig: stat /nonexistent"},
	} {
		err := run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
