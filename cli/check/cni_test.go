package check

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/deploy"
	"github.com/l5d-go/l5d/test/kube"
)

// TestCNIPluginChecks runs check --pre --linkerd-cni-enabled before and after the
// linkerd2-cni chart is applied to a real API server, with the DaemonSet's status as the
// controller and the kubelets would post it.
func TestCNIPluginChecks(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	o := Options{Pre: true, CNIEnabled: true, Namespace: "l5d-check-cni"}
	cat := "linkerd-cni-plugin/"

	rep := Run(ctx, c.Client(), c.Dynamic(), o)
	if rep.Success || results(rep)[cat+"cni plugin ConfigMap exists"] != "error" {
		t.Fatalf("checks pass without the CNI plugin: %v", results(rep))
	}
	if msg := errorOf(rep, "cni plugin ConfigMap exists"); !strings.Contains(msg, "linkerd install-cni") {
		t.Errorf("the error does not say how to install the plugin: %q", msg)
	}

	manifest, err := deploy.Render(deploy.CNIChart, deploy.Options{Namespace: CNINamespace})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, CNINamespace, string(manifest))
	ds := c.Client().AppsV1().DaemonSets(CNINamespace)
	setStatus := func(scheduled, ready int32) {
		t.Helper()
		d, err := ds.Get(ctx, cniName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status.DesiredNumberScheduled, d.Status.CurrentNumberScheduled, d.Status.NumberReady = scheduled, scheduled, ready
		if _, err := ds.UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		scheduled, ready int32
		want             string
	}{
		{1, 0, "number ready: 0, number scheduled: 1"},
		{1, 1, ""},
	} {
		setStatus(tc.scheduled, tc.ready)
		rep := Run(ctx, c.Client(), c.Dynamic(), o)
		got := results(rep)
		for _, name := range []string{"ConfigMap", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "DaemonSet"} {
			if r := got[cat+"cni plugin "+name+" exists"]; r != "success" {
				t.Errorf("cni plugin %s exists: %q", name, r)
			}
		}
		msg := errorOf(rep, "cni plugin pod is running on all nodes")
		if msg != tc.want {
			t.Errorf("%d/%d ready: error %q, want %q", tc.ready, tc.scheduled, msg, tc.want)
		}
		if rep.Success != (tc.want == "") {
			t.Errorf("%d/%d ready: success %v", tc.ready, tc.scheduled, rep.Success)
		}
	}
}

// errorOf returns the error of the named check in rep.
func errorOf(rep Report, name string) string {
	for _, c := range rep.Categories {
		for _, r := range c.Checks {
			if r.Name == name {
				return r.Error
			}
		}
	}
	return ""
}
