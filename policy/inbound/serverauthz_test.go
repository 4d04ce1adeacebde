package inbound_test

import (
	"strings"
	"testing"

	"github.com/l5d-go/l5d/policy/inbound"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/netconv"
)

// authzString renders an authorization compactly: "name kind nets authn".
func authzString(a *pb.Authz) string {
	var nets []string
	for _, n := range a.Networks {
		s := netString(n)
		for _, e := range n.Except {
			s += "-" + netString(&pb.Network{Net: e})
		}
		nets = append(nets, s)
	}
	authn := "?"
	switch {
	case a.Authentication.GetUnauthenticated() != nil:
		authn = "unauthenticated"
	case a.Authentication.GetMeshTLS().GetUnauthenticated() != nil:
		authn = "tls"
	case a.Authentication.GetMeshTLS().GetIdentities() != nil:
		ids := a.Authentication.GetMeshTLS().GetIdentities()
		var parts []string
		for _, id := range ids.Identities {
			parts = append(parts, id.Name)
		}
		for _, s := range ids.Suffixes {
			parts = append(parts, "*."+strings.Join(s.Parts, "."))
		}
		authn = "ids[" + strings.Join(parts, ",") + "]"
	}
	return a.Labels["kind"] + "/" + a.Labels["name"] + " " + strings.Join(nets, ",") + " " + authn
}

func netString(n *pb.Network) string {
	p, ok := netconv.Prefix(n.GetNet())
	if !ok {
		return "invalid"
	}
	return p.String()
}

func authzStrings(as []*pb.Authz) []string {
	var out []string
	for _, a := range as {
		out = append(out, authzString(a))
	}
	return out
}

func TestServerAuthorizations(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.pod(t, ns, "web-0", nil)
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-http, labels: {tier: front}}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: a-public}
spec:
  server: {name: web-http}
  client:
    unauthenticated: true
    networks: [{cidr: 0.0.0.0/0}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: b-meshed}
spec:
  server: {selector: {matchLabels: {tier: front}}}
  client:
    meshTLS:
      identities: ["*", "*.other.serviceaccount.identity.linkerd.cluster.local", "x.y.serviceaccount.identity.linkerd.cluster.local"]
      serviceAccounts: [{name: client}, {name: prom, namespace: viz}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: c-tls}
spec:
  server: {selector: {matchExpressions: [{key: tier, operator: In, values: [front, back]}]}}
  client:
    meshTLS: {unauthenticatedTLS: true}
    networks: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: d-other-server}
spec:
  server: {name: other}
  client: {unauthenticated: true}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: e-other-selector}
spec:
  server: {selector: {matchLabels: {tier: back}}}
  client: {unauthenticated: true}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: f-nobody}
spec:
  server: {name: web-http}
  client: {meshTLS: {}}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: g-bad-network}
spec:
  server: {name: web-http}
  client: {unauthenticated: true, networks: [{cidr: 10.0.0.0/33}]}
`)
	want := []string{
		"serverauthorization/a-public 0.0.0.0/0 unauthenticated",
		"serverauthorization/b-meshed 10.0.0.0/8 ids[x.y.serviceaccount.identity.linkerd.cluster.local,client." + ns +
			".serviceaccount.identity.linkerd.cluster.local,prom.viz.serviceaccount.identity.linkerd.cluster.local,*.,*.other.serviceaccount.identity.linkerd.cluster.local]",
		"serverauthorization/c-tls 10.0.0.0/8-10.1.0.0/16 tls",
	}
	var got []string
	e.poll(t, "the three ServerAuthorizations that select web-http", func() bool {
		s, err := e.client.GetPort(t.Context(), &pb.PortSpec{Workload: ns + ":web-0", Port: 8080})
		if err != nil {
			t.Fatal(err)
		}
		got = authzStrings(s.Authorizations)
		return strings.Join(got, "\n") == strings.Join(want, "\n")
	}, func() string { return strings.Join(got, "\n") })
	s, _ := e.client.GetPort(t.Context(), &pb.PortSpec{Workload: ns + ":web-0", Port: 8080})
	if md := s.Authorizations[0].GetMetadata().GetResource(); md.GetKind() != "serverauthorization" || md.GetName() != "a-public" || md.GetGroup() != "policy.linkerd.io" {
		t.Errorf("metadata %v", md)
	}
	// The API server refuses a ServerAuthorization without a server or client choice.
	for _, bad := range []string{
		"spec: {server: {name: web-http}, client: {}}",
		"spec: {server: {}, client: {unauthenticated: true}}",
	} {
		_, err := e.c.ApplyYAML(t.Context(), ns, "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: bad}\n"+bad+"\n")
		if err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
