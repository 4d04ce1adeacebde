package status_test

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/kube"
)

// TestEgressNetworkStatus: the leader marks an EgressNetwork Accepted, and not accepted
// (reason Invalid, naming the network) when a network overlaps the cluster networks.
func TestEgressNetworkStatus(t *testing.T) {
	c := kube.Shared(t)
	installCRDs(t, c)
	leaseNS, ns := c.Namespace(t), c.Namespace(t)
	r := startReplica(t, c, leaseNS, "policy-egress")
	eventually.True(t, "leadership", r.w.IsLeader)
	c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: internet}
spec: {trafficPolicy: Allow}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: overlapping}
spec:
  trafficPolicy: Deny
  networks: [{cidr: 0.0.0.0/0}]
`)
	accepted := func(name string) (string, string) {
		u, err := c.Dynamic().Resource(api.EgressNetworks).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, cd := range conds {
			m, _ := cd.(map[string]any)
			if m["type"] == "Accepted" {
				return fmt.Sprint(m["status"]), fmt.Sprint(m["reason"]) + ": " + fmt.Sprint(m["message"])
			}
		}
		return "", ""
	}
	eventually.True(t, "internet accepted", func() bool { s, _ := accepted("internet"); return s == "True" })
	var why string
	eventually.True(t, "overlapping refused", func() bool { s, r := accepted("overlapping"); why = r; return s == "False" })
	if want := "Invalid: spec.networks[0]: 0.0.0.0/0 overlaps the cluster network 10.0.0.0/8"; why != want {
		t.Errorf("reason %q, want %q", why, want)
	}
}
