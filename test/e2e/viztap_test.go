package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// runFor runs a command that streams until interrupted for d, then interrupts it, and
// returns what it printed on stdout and stderr.
func (s *Suite) runFor(d time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(s.Ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Cluster.Kubeconfig())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil && s.Ctx.Err() == nil {
		err = nil // interrupted at the end of d, as intended
	}
	return out.String(), errb.String(), err
}

// vizTap checks tap, top and profile --tap on the demo in ns (installed after the viz
// extension, so its pods have tap enabled).
func (s *Suite) vizTap(t *testing.T, ns string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("tap, top and profile --tap took %s", time.Since(start).Round(time.Second)) }()
	web := s.podOf(t, ns, "web")
	pod, err := s.Cluster.Client().CoreV1().Pods(ns).Get(s.Ctx, web, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Annotations["viz.linkerd.io/tap-enabled"] != "true" {
		t.Errorf("web pod %s lacks viz.linkerd.io/tap-enabled: the tap injector did not see it (annotations %v)", web, pod.Annotations)
	}

	// web -> catalog requests, over mesh TLS, within seconds.
	s.Eventually(t, 2*time.Minute, "viz tap deploy/web shows web -> catalog requests with tls=true", func() string {
		out, errOut, err := s.runFor(6*time.Second, s.Linkerd(), "viz", "tap", "deploy/web", "-n", ns, "--to", "deploy/catalog")
		if err != nil {
			return fmt.Sprintf("%v: %s", err, errOut)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "req id=") && strings.Contains(l, "proxy=out") && strings.Contains(l, "tls=true") &&
				strings.Contains(l, ":path=/l5d.demo.v1.Catalog/") {
				return ""
			}
		}
		return "no matching req line in:\n" + out + errOut
	})

	// A ServiceAccount without tap RBAC is refused.
	_, errOut, err := s.runFor(30*time.Second, s.Linkerd(), "viz", "tap", "deploy/web", "-n", ns, "--as", "system:serviceaccount:"+ns+":default")
	if err == nil || !strings.Contains(errOut, "forbidden") {
		t.Errorf("viz tap as a ServiceAccount without tap RBAC: err %v, stderr %q; want Forbidden", err, errOut)
	}

	// top prints the demo's paths.
	top := s.MustRun(t, nil, s.Linkerd(), "viz", "top", "deploy/web", "-n", ns, "--duration", "6s", "--refresh", "6s")
	for _, want := range []string{"/api/items", "/l5d.demo.v1.Catalog/"} {
		if !strings.Contains(top, want) {
			t.Errorf("viz top deploy/web lacks %s:\n%s", want, top)
		}
	}

	// profile --tap writes routes for web's paths that the ServiceProfile validator accepts.
	sp := s.MustRun(t, nil, s.Linkerd(), "viz", "profile", "-n", ns, "web", "--tap", "deploy/web", "--tap-duration", "6s")
	if !strings.Contains(sp, "name: GET /api/items") {
		t.Errorf("profile --tap has no route GET /api/items:\n%s", sp)
	}
	s.MustRun(t, []byte(sp), s.Kubectl(), "apply", "--dry-run=server", "-f", "-")
}
