package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/deploy/images"
	"github.com/l5d-go/l5d/test/demo/traffic"
	corev1 "k8s.io/api/core/v1"
)

// demoWorkload describes one demo component: a ServiceAccount, a Service and a
// Deployment of one demo image, all named Name and labelled app=Name.
type demoWorkload struct {
	NS, Name string
	// Image is the demo binary: demo-web, demo-catalog, demo-ratings or demo-traffic, or
	// echo-advanced (test/echo's server; its ports come from Args).
	Image string
	// Args are the container's arguments.
	Args []string
	// ServiceAccount defaults to Name.
	ServiceAccount string
	Env            map[string]string
	// PodAnnotations go on the pod template (config.linkerd.io/* overrides...).
	PodAnnotations map[string]string
}

// demoPorts are the named container ports of each demo image and the port its readiness
// probe (GET /ready) uses.
var demoPorts = map[string]struct {
	ports map[string]int
	probe string
}{
	"demo-web":     {map[string]int{"http": 8080}, "http"},
	"demo-catalog": {map[string]int{"grpc": 8080, "admin": 9990}, "admin"},
	"demo-ratings": {map[string]int{"grpc": 8080, "admin": 9990}, "admin"},
	"demo-traffic": {map[string]int{"admin": 9990}, "admin"},
	// echo-advanced answers any path on every port its --port flags name; run with
	// echoArgs.
	"echo-advanced": {map[string]int{"http": 8080, "probe": 8081}, "probe"},
}

// imageRef is the reference of a demoPorts image as make images names it: the demo's
// ghcr.io/l5d-go/<name>:v1, and echo-advanced under the Gateway API conformance suite's name.
func imageRef(name string) string {
	if name == "echo-advanced" {
		return echoImage
	}
	return "ghcr.io/l5d-go/" + name + ":v1"
}

// echoImage is the echo-advanced image (test/cmd/echo-advanced).
const echoImage = "registry.k8s.io/gateway-api/echo-advanced:" + images.EchoAdvancedTag

// echoArgs serve the echo-advanced ports of demoPorts.
var echoArgs = []string{"--port=8080", "--port=8081"}

// YAML renders the workload's manifests.
func (w demoWorkload) YAML() string {
	ports, ok := demoPorts[w.Image]
	if !ok {
		panic("demoWorkload: unknown demo image " + w.Image)
	}
	sa := w.ServiceAccount
	if sa == "" {
		sa = w.Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: v1
kind: Service
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  selector: {app: %[3]s}
  ports:
`, w.NS, sa, w.Name)
	for _, name := range sortedKeys(ports.ports) {
		fmt.Fprintf(&b, "  - {name: %s, port: %d, targetPort: %s}\n", name, ports.ports[name], name)
	}
	fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[2]s}
  template:
    metadata:
      labels: {app: %[2]s}
`, w.NS, w.Name)
	if len(w.PodAnnotations) > 0 {
		b.WriteString("      annotations:\n")
		for _, k := range sortedKeys(w.PodAnnotations) {
			fmt.Fprintf(&b, "        %s: %q\n", k, w.PodAnnotations[k])
		}
	}
	fmt.Fprintf(&b, `    spec:
      serviceAccountName: %s
      containers:
      - name: %s
        image: %s
`, sa, w.Name, imageRef(w.Image))
	b.WriteString(containerArgs(w.Args, "        "))
	b.WriteString(containerEnvAndPorts(w.Env, ports.ports, "        "))
	fmt.Fprintf(&b, `        readinessProbe:
          httpGet: {path: /ready, port: %s}
          periodSeconds: 2
`, ports.probe)
	return b.String()
}

// containerArgs renders a container's args at the given indent ("" without args).
func containerArgs(args []string, indent string) string {
	if len(args) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(indent + "args:\n")
	for _, a := range args {
		fmt.Fprintf(&b, "%s- %q\n", indent, a)
	}
	return b.String()
}

// containerEnvAndPorts renders a container's env and ports at the given indent.
func containerEnvAndPorts(env map[string]string, ports map[string]int, indent string) string {
	var b strings.Builder
	if len(env) > 0 {
		b.WriteString(indent + "env:\n")
		for _, k := range sortedKeys(env) {
			fmt.Fprintf(&b, "%s- {name: %s, value: %q}\n", indent, k, env[k])
		}
	}
	if len(ports) > 0 {
		b.WriteString(indent + "ports:\n")
		for _, name := range sortedKeys(ports) {
			fmt.Fprintf(&b, "%s- {name: %s, containerPort: %d}\n", indent, name, ports[name])
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// svcAddr is the cluster DNS name and port of a Service's port 8080.
func svcAddr(ns, name string) string {
	return name + "." + ns + ".svc.cluster.local:8080"
}

// identity is the mesh identity of a ServiceAccount.
func identity(ns, sa string) string {
	return sa + "." + ns + ".serviceaccount.identity.linkerd.cluster.local"
}

// podOf waits for the one ready meshed pod labelled app=name and returns its name.
func (s *Suite) podOf(t *testing.T, ns, app string) string {
	t.Helper()
	return s.WaitPodsReady(t, 4*time.Minute, ns, "app="+app, 1, true)[0].Name
}

// trafficWindow waits until the demo-traffic pod has completed at least n more requests
// than at the call, and returns the counts of those requests (the difference).
func (s *Suite) trafficWindow(t *testing.T, ns, pod string, n int64) traffic.Stats {
	t.Helper()
	start := s.mustTrafficStats(t, ns, pod)
	var d traffic.Stats
	s.Eventually(t, 3*time.Minute, fmt.Sprintf("%d more requests from %s", n, pod), func() string {
		now, err := s.TrafficStats(ns, pod)
		if err != nil {
			return err.Error()
		}
		d = statsDelta(start, now)
		if d.Sent < n {
			return fmt.Sprintf("%d requests so far: %v", d.Sent, d.ByStatus)
		}
		return ""
	})
	return d
}

// waitTrafficStatus waits until the demo-traffic pod has completed more requests with
// the given status ("200", "403"...) than at the call: the path it measures works.
func (s *Suite) waitTrafficStatus(t *testing.T, ns, pod, status string) {
	t.Helper()
	start := s.mustTrafficStats(t, ns, pod)
	s.Eventually(t, 3*time.Minute, pod+" gets a "+status, func() string {
		now, err := s.TrafficStats(ns, pod)
		if err != nil {
			return err.Error()
		}
		if now.ByStatus[status] == start.ByStatus[status] {
			return fmt.Sprintf("%s got %v since", pod, statsDelta(start, now).ByStatus)
		}
		return ""
	})
}

func (s *Suite) mustTrafficStats(t *testing.T, ns, pod string) traffic.Stats {
	t.Helper()
	var st traffic.Stats
	s.Eventually(t, time.Minute, "stats of "+pod, func() string {
		var err error
		if st, err = s.TrafficStats(ns, pod); err != nil {
			return err.Error()
		}
		return ""
	})
	return st
}

// statsDelta is b minus a.
func statsDelta(a, b traffic.Stats) traffic.Stats {
	d := traffic.Stats{Sent: b.Sent - a.Sent, Failed: b.Failed - a.Failed, Skipped: b.Skipped - a.Skipped,
		ByPath: map[string]int64{}, ByStatus: map[string]int64{}}
	for k, v := range b.ByPath {
		if v != a.ByPath[k] {
			d.ByPath[k] = v - a.ByPath[k]
		}
	}
	for k, v := range b.ByStatus {
		if v != a.ByStatus[k] {
			d.ByStatus[k] = v - a.ByStatus[k]
		}
	}
	return d
}

// metricSum sums the samples of metric name (exactly; e.g. "route_retry_total") whose
// labels contain every one of labels (each written as in the text: `dst="x:80"`).
func metricSum(text, name string, labels ...string) float64 {
	var sum float64
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		match := true
		for _, want := range labels {
			if !strings.Contains(l[:i], want) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// hasNativeProxy reports whether the pod runs linkerd-proxy as a native sidecar: an init
// container with restartPolicy Always, and not among the regular containers.
func hasNativeProxy(p *corev1.Pod) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == "linkerd-proxy" {
			return false
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == "linkerd-proxy" {
			return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	return false
}
