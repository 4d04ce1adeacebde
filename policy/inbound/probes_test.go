package inbound_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/l5d-go/l5d/policy/inbound"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// probedPod has liveness, readiness and startup probes on port 8080 (by name and number)
// and one on port 9000.
func (e *env) probedPod(t *testing.T, ns, name string, annotations map[string]string) {
	get := func(port intstr.IntOrString, path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: port, Path: path}}}
	}
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web"}, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				LivenessProbe:  get(intstr.FromString("http"), "/live"),
				ReadinessProbe: get(intstr.FromInt32(8080), "/ready"),
				StartupProbe:   get(intstr.FromInt32(8080), "/ready")},
			{Name: "side", Image: "side", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9000}},
				LivenessProbe: get(intstr.FromString("admin"), "")},
		}}})
}

// routeSummary renders a route: "name: matches | authorizations".
func routeSummary(r *pb.HttpRoute) string {
	var matches []string
	for _, rule := range r.Rules {
		for _, m := range rule.Matches {
			s := ""
			if m.GetMethod() != nil {
				s = m.GetMethod().GetRegistered().String() + " "
			}
			switch {
			case m.GetPath().GetExact() != "":
				s += "=" + m.GetPath().GetExact()
			case m.GetPath().GetPrefix() != "":
				s += m.GetPath().GetPrefix() + "*"
			}
			matches = append(matches, s)
		}
	}
	name := r.GetMetadata().GetDefault()
	if res := r.GetMetadata().GetResource(); res != nil {
		name = res.Group + "/" + res.Kind + "/" + res.Name
	}
	return name + ": " + strings.Join(matches, ",") + " | " + strings.Join(authzStrings(r.Authorizations), "; ")
}

func httpRoutes(s *pb.Server) []*pb.HttpRoute {
	p := s.GetProtocol()
	switch {
	case p.GetDetect() != nil:
		return p.GetDetect().GetHttpRoutes()
	case p.GetHttp1() != nil:
		return p.GetHttp1().GetRoutes()
	case p.GetHttp2() != nil:
		return p.GetHttp2().GetRoutes()
	}
	return nil
}

func routeSummaries(s *pb.Server) string {
	var out []string
	for _, r := range httpRoutes(s) {
		out = append(out, routeSummary(r))
	}
	return strings.Join(out, "\n")
}

const probeAuthz = "default/probe 0.0.0.0/0,::/0 unauthenticated"

func TestProbeRoutesUnderDefaultPolicies(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	for policy, authz := range map[string]string{
		inbound.AllUnauthenticated:     "default/all-unauthenticated 0.0.0.0/0,::/0 unauthenticated",
		inbound.AllAuthenticated:       "default/all-authenticated 0.0.0.0/0,::/0 ids[*.]",
		inbound.ClusterUnauthenticated: "default/cluster-unauthenticated 10.0.0.0/8 unauthenticated",
		inbound.ClusterAuthenticated:   "default/cluster-authenticated 10.0.0.0/8 ids[*.]",
		inbound.Audit:                  "default/audit 0.0.0.0/0,::/0 unauthenticated",
		inbound.Deny:                   "",
	} {
		e.probedPod(t, ns, policy, map[string]string{"config.linkerd.io/default-inbound-policy": policy})
		s := e.getPort(t, ns, policy, 8080)
		if got := strings.Join(authzStrings(s.Authorizations), "; "); got != authz {
			t.Errorf("%s: server authorizations %s, want %s", policy, got, authz)
		}
		// The server's authorizations apply to every route; the probe route adds its own.
		want := "default: /* | \nprobe: GET =/live,GET =/ready | " + probeAuthz
		if got := routeSummaries(s); got != want || s.Protocol.GetDetect() == nil {
			t.Errorf("%s: routes\n%s\nwant\n%s", policy, got, want)
		}
		// Port 9000 is probed on "/" by the other container.
		want = "default: /* | \nprobe: GET =/ | " + probeAuthz
		if got := routeSummaries(e.getPort(t, ns, policy, 9000)); got != want {
			t.Errorf("%s port 9000: routes\n%s\nwant\n%s", policy, got, want)
		}
	}
	// A port without probes has only the default route.
	e.pod(t, ns, "unprobed", nil)
	if got, want := routeSummaries(e.getPort(t, ns, "unprobed", 8080)), "default: /* | "; got != want {
		t.Errorf("unprobed: %s, want %s", got, want)
	}
}

func TestProbeRoutesOnServer(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.probedPod(t, ns, "web-0", nil)
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-admin}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 9000
  proxyProtocol: opaque
`)
	want := "default: /* | \nprobe: GET =/live,GET =/ready | " + probeAuthz
	var got string
	e.poll(t, "a Server without HTTPRoutes keeps the probe routes, denying the rest", func() bool {
		s := e.getPort(t, ns, "web-0", 8080)
		got = routeSummaries(s)
		return got == want && s.Labels["name"] == "web-http" && len(s.Authorizations) == 0
	}, func() string { return got })
	var opaque *pb.Server
	e.poll(t, "the opaque Server selects port 9000", func() bool {
		opaque = e.getPort(t, ns, "web-0", 9000)
		return opaque.Protocol.GetOpaque() != nil && opaque.Labels["name"] == "web-admin"
	}, func() string { return fmt.Sprintf("%v %v", opaque.Labels, opaque.Protocol) })
}
