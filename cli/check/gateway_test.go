package check

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/test/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestGatewayAPICRDs: `linkerd check --pre` and `linkerd check` warn, naming them, when the
// Gateway API CRDs are missing (as Linkerd's check does), and pass once they are installed;
// externalworkloads.workload.linkerd.io is among the CRDs `linkerd check --crds` requires.
func TestGatewayAPICRDs(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	dyn := c.Dynamic()
	for _, n := range GatewayAPICRDs {
		if err := dyn.Resource(crdResource).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		missing, err := missingCRDs(ctx, dyn, GatewayAPICRDs)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) == len(GatewayAPICRDs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Gateway API CRDs still present a minute after deletion: %v", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	const key = "pre-kubernetes-setup/Gateway API CRDs are installed"
	pre := Run(ctx, c.Client(), dyn, Options{Pre: true, Namespace: "l5d-check-gwapi"})
	expect(t, pre, key, "warning", "httproutes.gateway.networking.k8s.io, grpcroutes.gateway.networking.k8s.io", "l5d-gateway-api-crds")
	if !pre.Success {
		t.Error("missing Gateway API CRDs fail check --pre; they only warn")
	}

	c.ApplyGatewayAPICRDs(t, "httproutes", "grpcroutes")
	pre = Run(ctx, c.Client(), dyn, Options{Pre: true, Namespace: "l5d-check-gwapi"})
	expect(t, pre, key, "success", "", "")
}

// TestExternalWorkloadCRD: the CRDs `linkerd install --crds` renders serve Linkerd's
// ExternalWorkload (v1beta1 stored, v1alpha1 served), accept a workload as Linkerd documents
// it and refuse one without its mTLS identity, naming the field.
func TestExternalWorkloadCRD(t *testing.T) {
	c := kube.Shared(t)
	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
	crd := c.WaitCRD(t, "externalworkloads.workload.linkerd.io")
	var served []string
	for _, v := range crd.Spec.Versions {
		served = append(served, v.Name)
	}
	if strings.Join(served, ",") != "v1alpha1,v1beta1" {
		t.Errorf("served versions %v, want v1alpha1 and v1beta1", served)
	}
	ns := "l5d-check-extwl"
	c.Apply(t, "", "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ns+"}\n")
	gvr := schema.GroupVersionResource{Group: "workload.linkerd.io", Version: "v1beta1", Resource: "externalworkloads"}
	ok := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "workload.linkerd.io/v1beta1", "kind": "ExternalWorkload",
		"metadata": map[string]any{"name": "vm-1", "labels": map[string]any{"app": "legacy"}},
		"spec": map[string]any{
			"meshTLS":     map[string]any{"identity": "spiffe://root.linkerd.cluster.local/vm-1", "serverName": "vm-1.cluster.local"},
			"ports":       []any{map[string]any{"name": "http", "port": int64(80)}},
			"workloadIPs": []any{map[string]any{"ip": "192.0.2.10"}},
		},
	}}
	got, err := c.Dynamic().Resource(gvr).Namespace(ns).Create(context.Background(), ok, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating an ExternalWorkload as Linkerd documents it: %v", err)
	}
	if p, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports"); len(p) != 1 || p[0].(map[string]any)["protocol"] != "TCP" {
		t.Errorf("ports %v: protocol does not default to TCP", p)
	}
	bad := ok.DeepCopy()
	bad.SetName("vm-2")
	unstructured.RemoveNestedField(bad.Object, "spec", "meshTLS")
	if _, err := c.Dynamic().Resource(gvr).Namespace(ns).Create(context.Background(), bad, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "meshTLS") {
		t.Errorf("an ExternalWorkload without meshTLS: %v, want a refusal naming meshTLS", err)
	}
}
