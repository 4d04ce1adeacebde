package gateway

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy/forward"
)

// TestTarget: a name with a port in one of the suffixes is forwarded, normalized (lower
// case, no trailing dot); everything else is refused with a status and a reason.
func TestTarget(t *testing.T) {
	g := New(Options{Suffixes: []string{"svc.cluster.local.", "svc.east.example."}})
	for _, c := range []struct {
		in, want string
		status   int
	}{
		{"web.ns.svc.cluster.local:8080", "web.ns.svc.cluster.local:8080", 0},
		{"Web.NS.svc.Cluster.Local.:80", "web.ns.svc.cluster.local:80", 0},
		{"db.prod.svc.east.example:5432", "db.prod.svc.east.example:5432", 0},
		{"svc.cluster.local:80", "", http.StatusForbidden},
		{"web.ns.svc.cluster.local.evil.example:80", "", http.StatusForbidden},
		{"websvc.cluster.local:80", "", http.StatusForbidden},
		{"10.0.0.1:80", "", http.StatusForbidden},
		{"web.ns.svc.cluster.local", "", http.StatusBadRequest},
		{":80", "", http.StatusBadRequest},
		{"", "", http.StatusBadRequest},
	} {
		got, err := g.Target(c.in)
		if c.status == 0 {
			if err != nil || got != c.want {
				t.Errorf("Target(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		var re *forward.RouteError
		if !errors.As(err, &re) || re.Status != c.status || !strings.HasPrefix(re.Reason, "gateway: ") {
			t.Errorf("Target(%q) = %q, %v; want a %d refusal", c.in, got, err, c.status)
		}
	}
	if _, err := New(Options{}).Target("web.ns.svc.cluster.local:80"); err == nil {
		t.Error("a gateway without suffixes forwarded")
	}
	if got, err := New(Options{Suffixes: []string{"."}}).Target("anything.example:1"); err != nil || got != "anything.example:1" {
		t.Errorf(`suffix ".": %q %v`, got, err)
	}
}
