package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// externalIP stands for an address outside the cluster: it is in TEST-NET-2, outside every
// network of the control plane's default clusterNetworks, and the test gives it to the
// node namespace (which every pod routes through), never to the host.
const externalIP = "198.51.100.10"

// TestRateLimitClientIDAndEgress covers issue 23's policy parity on the whole cluster, in
// one meshed namespace: an echo server (test/echo) and three meshed clients.
//   - rate limit: a Server for the echo's http port admitting every client, with an
//     HTTPLocalRateLimitPolicy of 4 requests per second in total: a client sending 20 a
//     second gets 429s beside 200s, counted by the echo's proxy in
//     inbound_http_local_ratelimit_total; once the policy is deleted the 429s stop.
//   - l5d-client-id: a Job sending a forged l5d-client-id to the echo reads back (the
//     echo answers with the request's header fields) its own mesh identity, never the
//     forged value.
//   - egress: a client requesting an HTTP server the test runs at an address outside the
//     cluster networks is let through without an EgressNetwork; an EgressNetwork with
//     trafficPolicy Deny in its namespace turns every request into a 403 that never
//     reaches the server; an HTTPRoute attached to that EgressNetwork lets them through
//     again.
func TestRateLimitClientIDAndEgress(t *testing.T) {
	s := need(t)
	const ns = "e2e-parity"
	s.Namespace(t, ns, map[string]string{"linkerd.io/inject": "enabled"})
	ext := s.externalServer(t)
	for _, w := range []demoWorkload{
		{NS: ns, Name: "echo", Image: "echo-advanced", Args: echoArgs},
		{NS: ns, Name: "burst", Image: "demo-traffic", Env: map[string]string{
			"TARGET": "http://echo." + ns + ".svc.cluster.local:8080", "RATE": "20", "REQUEST_PATH": "/limited"}},
		{NS: ns, Name: "egress", Image: "demo-traffic", Env: map[string]string{
			"TARGET": "http://" + ext.addr, "RATE": "5", "REQUEST_PATH": "/outside"}},
	} {
		s.Apply(t, w.YAML())
	}
	echo, burst, egress := s.podOf(t, ns, "echo"), s.podOf(t, ns, "burst"), s.podOf(t, ns, "egress")

	t.Run("rate limit", func(t *testing.T) {
		s.waitTrafficStatus(t, ns, burst, "200")
		s.Apply(t, fmt.Sprintf(`apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: echo-http, namespace: %[1]s}
spec:
  podSelector:
    matchLabels: {app: echo}
  port: http
  proxyProtocol: HTTP/1
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: echo-limit, namespace: %[1]s}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: echo-http}
  total: {requestsPerSecond: 4}
`, ns))
		s.waitTrafficStatus(t, ns, burst, "429") // the limit is in force
		d := s.trafficWindow(t, ns, burst, 40)
		if d.ByStatus["429"] == 0 || d.ByStatus["200"] == 0 || d.ByStatus["200"]+d.ByStatus["429"] != d.Sent {
			t.Errorf("20 requests a second under a limit of 4 got %v, want both 200s and 429s, nothing else", d.ByStatus)
		}
		m, err := s.ProxyMetrics(ns, echo)
		if err != nil {
			t.Fatal(err)
		}
		limited := []string{`srv_name="echo-http"`, `ratelimit_kind="HTTPLocalRateLimitPolicy"`,
			`ratelimit_name="echo-limit"`, `ratelimit_scope="total"`, `client_id="` + identity(ns, "burst") + `"`}
		n := metricSum(m, "inbound_http_local_ratelimit_total", limited...)
		if n < float64(d.ByStatus["429"]) {
			t.Errorf("echo's proxy counts %v requests refused by echo-limit, want at least the %d 429s burst got:\n%s",
				n, d.ByStatus["429"], grepLines(m, "ratelimit"))
		}
		t.Logf("under a limit of 4 requests a second: %v; %v refusals counted so far", d.ByStatus, n)

		s.MustRun(t, nil, s.Kubectl(), "delete", "-n", ns, "httplocalratelimitpolicy", "echo-limit")
		s.waitNoStatus(t, ns, burst, "429", 40)
	})

	t.Run("l5d-client-id", func(t *testing.T) {
		out := s.runEchoClient(t, ns, "caller", "http://echo."+ns+".svc.cluster.local:8081/who",
			"-H", "l5d-client-id:forged.example", "--count=3")
		want := "RequestHeader=L5d-Client-Id:" + identity(ns, "caller")
		if got := strings.Count(out, want); got != 3 || strings.Contains(out, "forged.example") ||
			strings.Count(out, "L5d-Client-Id:") != 3 {
			t.Errorf("the echo saw, over 3 requests carrying a forged l5d-client-id, %d times %q; want exactly that, 3 times, and never the forged value:\n%s",
				got, want, out)
		}
	})

	t.Run("egress", func(t *testing.T) {
		s.waitTrafficStatus(t, ns, egress, "200")
		d := s.trafficWindow(t, ns, egress, 10)
		if d.ByStatus["200"] != d.Sent {
			t.Fatalf("without an EgressNetwork, requests to %s got %v, want only 200s", ext.addr, d.ByStatus)
		}

		s.Apply(t, fmt.Sprintf(`apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: internet, namespace: %s}
spec:
  trafficPolicy: Deny
`, ns))
		s.waitTrafficStatus(t, ns, egress, "403")
		hits := ext.hits.Load()
		d = s.trafficWindow(t, ns, egress, 10)
		if d.ByStatus["403"] != d.Sent {
			t.Errorf("under an EgressNetwork denying traffic, requests to %s got %v, want only 403s", ext.addr, d.ByStatus)
		}
		if n := ext.hits.Load() - hits; n != 0 {
			t.Errorf("under an EgressNetwork denying traffic, %d requests reached %s", n, ext.addr)
		}
		s.wantEgressRouteStatuses(t, ns, egress, ext, "http-egress-deny", "403", d.ByStatus["403"])

		// Linkerd's own HTTPRoute: `linkerd install --crds` installs it, not the Gateway
		// API's.
		s.Apply(t, fmt.Sprintf(`apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: allow-outside, namespace: %s}
spec:
  parentRefs:
  - {group: policy.linkerd.io, kind: EgressNetwork, name: internet, port: %d}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /outside}
`, ns, ext.port))
		s.waitTrafficStatus(t, ns, egress, "200")
		hits = ext.hits.Load()
		d = s.trafficWindow(t, ns, egress, 10)
		if d.ByStatus["200"] != d.Sent || ext.hits.Load()-hits < d.Sent {
			t.Errorf("with an HTTPRoute attached to the EgressNetwork, requests to %s got %v (%d reached it), want only 200s, all reaching it",
				ext.addr, d.ByStatus, ext.hits.Load()-hits)
		}
		s.wantEgressRouteStatuses(t, ns, egress, ext, "allow-outside", "200", d.ByStatus["200"])
	})
}

// wantEgressRouteStatuses checks that the client pod's proxy counts at least n requests
// with the given status on route routeName of the EgressNetwork "internet" for ext, in
// outbound_http_route_request_statuses_total, labelled with the EgressNetwork as the
// parent and ext's address as the host.
func (s *Suite) wantEgressRouteStatuses(t *testing.T, ns, pod string, ext *externalServer, routeName, status string, n int64) {
	t.Helper()
	m, err := s.ProxyMetrics(ns, pod)
	if err != nil {
		t.Fatal(err)
	}
	labels := []string{`parent_group="policy.linkerd.io",parent_kind="EgressNetwork",parent_namespace="` + ns +
		`",parent_name="internet",parent_port="` + strconv.Itoa(ext.port) + `"`,
		`route_name="` + routeName + `"`, `hostname="` + externalIP + `"`, `http_status="` + status + `"`}
	if got := metricSum(m, "outbound_http_route_request_statuses_total", labels...); got < float64(n) {
		t.Errorf("%s's proxy counts %v requests with status %s on route %s of the EgressNetwork, want at least %d:\n%s",
			pod, got, status, routeName, n, grepLines(m, "outbound_http_route_request_statuses_total"))
	}
}

// externalServer is an HTTP server at an address outside the cluster networks.
type externalServer struct {
	addr string // externalIP:port
	port int
	hits atomic.Int64 // requests served
}

// externalServer gives the node namespace externalIP and serves HTTP there (200 to every
// request) until t ends. Pods reach it through their default route, via the node.
func (s *Suite) externalServer(t *testing.T) *externalServer {
	t.Helper()
	nodeNS := s.Cluster.Network().Node
	ip := func(args ...string) error {
		cmd := exec.Command("ip", args...)
		cmd.Stderr = os.Stderr
		if err := nodeNS.Run(cmd); err != nil {
			return fmt.Errorf("ip %s in the node namespace: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	if err := ip("addr", "add", externalIP+"/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ip("addr", "del", externalIP+"/32", "dev", "lo"); err != nil {
			t.Error(err)
		}
	})
	ln, err := nodeNS.Listen("tcp", externalIP+":0")
	if err != nil {
		t.Fatalf("listening on %s in the node namespace: %v", externalIP, err)
	}
	e := &externalServer{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		_, _ = io.WriteString(w, "outside the cluster\n")
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the external server at %s: %v", e.addr, err)
		}
	})
	return e
}

// waitNoStatus waits until the demo-traffic pod has completed n requests in a row without
// the given status.
func (s *Suite) waitNoStatus(t *testing.T, ns, pod, status string, n int64) {
	t.Helper()
	since := s.mustTrafficStats(t, ns, pod)
	s.Eventually(t, 3*time.Minute, fmt.Sprintf("%d requests from %s without a %s", n, pod, status), func() string {
		now, err := s.TrafficStats(ns, pod)
		if err != nil {
			return err.Error()
		}
		d := statsDelta(since, now)
		if d.ByStatus[status] > 0 {
			since = now // start a new run
			return fmt.Sprintf("%s got %v", pod, d.ByStatus)
		}
		if d.Sent < n {
			return fmt.Sprintf("%d requests so far without a %s", d.Sent, status)
		}
		return ""
	})
}

// runEchoClient runs test/echo's client with args in a meshedJob named job (its
// ServiceAccount too) and returns the client's output.
func (s *Suite) runEchoClient(t *testing.T, ns, job string, args ...string) string {
	t.Helper()
	s.Apply(t, meshedJob{NS: ns, Name: job, Container: "client", Image: echoImage,
		Args: append([]string{"client"}, args...), BackoffLimit: 2}.YAML())
	s.waitJobComplete(t, ns, job)
	pods, err := s.Cluster.Client().CoreV1().Pods(ns).List(s.Ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			b, err := s.Cluster.Client().CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "client"}).DoRaw(s.Ctx)
			if err != nil {
				t.Fatalf("output of job %s: %v", job, err)
			}
			return string(b)
		}
	}
	t.Fatalf("job %s completed without a succeeded pod", job)
	return ""
}
