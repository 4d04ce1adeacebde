package kube

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.substrate.l5d.test
spec:
  group: substrate.l5d.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
`

func TestCRDUsableAfterWaitCRD(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	c.Apply(t, "", widgetCRD)
	c.WaitCRD(t, "widgets.substrate.l5d.test")

	gvr := schema.GroupVersionResource{Group: "substrate.l5d.test", Version: "v1alpha1", Resource: "widgets"}
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "substrate.l5d.test/v1alpha1", "kind": "Widget",
		"metadata": map[string]any{"name": "small"},
		"spec":     map[string]any{"size": int64(2)},
	}}
	if _, err := c.Dynamic().Resource(gvr).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a Widget right after WaitCRD: %v", err)
	}
	// The schema is enforced, so the CRD really is the one applied.
	w.SetName("broken")
	w.Object["spec"] = map[string]any{"size": int64(0)}
	if _, err := c.Dynamic().Resource(gvr).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err == nil {
		t.Fatal("a Widget with size 0 was accepted despite minimum: 1")
	}
}

func TestApplyCRDAndResourceInOneText(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	objs := c.Apply(t, ns, widgetCRD+`
---
apiVersion: substrate.l5d.test/v1alpha1
kind: Widget
metadata: {name: big}
spec: {size: 40}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: strict}
`)
	if len(objs) != 3 {
		t.Fatalf("applied %d objects, want 3", len(objs))
	}
	if got := objs[1].GetNamespace(); got != ns {
		t.Errorf("Widget namespace = %q, want the default %q", got, ns)
	}
	cm, err := c.Client().CoreV1().ConfigMaps(ns).Get(context.Background(), "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "strict" {
		t.Errorf("config map data = %v", cm.Data)
	}
	// Applying again changes the object in place (server-side apply, same field manager).
	c.Apply(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: lax}\n")
	cm, err = c.Client().CoreV1().ConfigMaps(ns).Get(context.Background(), "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "lax" {
		t.Errorf("after re-apply, config map data = %v", cm.Data)
	}
}

func TestDecodeObjectsRejectsBadInput(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
		want                int
	}{
		{name: "two docs and an empty one", text: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n", want: 2},
		{name: "list expands", text: `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}`, want: 1},
		{name: "no kind", text: "apiVersion: v1\nmetadata: {name: a}\n", wantErr: "apiVersion and kind are required"},
		{name: "no name", text: "apiVersion: v1\nkind: ConfigMap\n", wantErr: "metadata.name is required"},
		{name: "not yaml", text: "a: [b\n", wantErr: "document 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decodeObjects(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != tt.want {
				t.Fatalf("got %d objects, want %d", len(objs), tt.want)
			}
		})
	}
}
