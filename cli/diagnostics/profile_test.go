package diagnostics

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/internal/cptest"
	"github.com/l5d-go/l5d/test/kube"
)

// TestProfile serves a ServiceProfile through the real Destination server reading a real
// API server and checks that Profile returns its route and WritePolicy prints it; a bad
// authority is refused naming it.
func TestProfile(t *testing.T) {
	c := kube.Shared(t)
	addr := cptest.Destination(t, c)
	ns := c.Namespace(t)
	c.Apply(t, ns, `apiVersion: v1
kind: Service
metadata: {name: books}
spec:
  selector: {app: books}
  ports: [{name: http, port: 80}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: books.`+ns+`.svc.cluster.local}
spec:
  routes:
  - name: GET /books
    condition: {method: GET, pathRegex: /books}
    isRetryable: true
`)
	authority := "books." + ns + ".svc.cluster.local:80"
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := Profile(ctx, addr, authority, ns)
		cancel()
		if err == nil && len(p.GetRoutes()) == 1 {
			var b bytes.Buffer
			if err := WritePolicy(&b, p, "yaml"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "GET /books") || !strings.Contains(b.String(), "isRetryable: true") {
				t.Errorf("profile output:\n%s", b.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("profile of %s: %v %v", authority, p, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval while the informers catch up
	}
	if _, err := Profile(context.Background(), addr, "books", ns); err == nil || !strings.Contains(err.Error(), "books") {
		t.Errorf("authority without a port: %v", err)
	}
}
