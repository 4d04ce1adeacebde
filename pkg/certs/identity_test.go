package certs

import "testing"

func TestWorkloadIdentity(t *testing.T) {
	if got := WorkloadIdentity("web", "emojivoto", "linkerd", "cluster.local"); got != "web.emojivoto.serviceaccount.identity.linkerd.cluster.local" {
		t.Fatalf("got %q", got)
	}
}
