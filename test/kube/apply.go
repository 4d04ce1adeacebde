package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// FieldManager is the field manager of objects written by Apply.
const FieldManager = "l5d-test"

// mappingTimeout bounds the wait for a kind to be served, e.g. a CRD applied just before.
const mappingTimeout = 30 * time.Second

// Apply server-side applies every object in a multi-document YAML (or JSON) text, in
// order, with field manager FieldManager and forced conflicts, and returns the objects as
// stored. Any kind the API server serves works, including custom resources whose CRD is
// applied earlier in the same text (Apply waits up to 30s for the kind to be served).
// Namespaced objects without metadata.namespace go to ns. Objects with only generateName
// are created instead. Objects in a test namespace go away with it; cluster-scoped objects
// stay until the control plane stops.
func (c *Cluster) Apply(t testing.TB, ns, yamlText string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := c.ApplyYAML(context.Background(), ns, yamlText)
	if err != nil {
		t.Fatalf("kube: Apply: %v", err)
	}
	return objs
}

// ApplyYAML is Apply for callers without a testing.TB; it returns the first error.
func (c *Cluster) ApplyYAML(ctx context.Context, ns, yamlText string) ([]*unstructured.Unstructured, error) {
	docs, err := decodeObjects(yamlText)
	if err != nil {
		return nil, err
	}
	out := make([]*unstructured.Unstructured, 0, len(docs))
	for _, obj := range docs {
		applied, err := c.applyObject(ctx, ns, obj)
		if err != nil {
			return out, fmt.Errorf("%s %s: %w", obj.GetKind(), describe(obj), err)
		}
		out = append(out, applied)
	}
	return out, nil
}

func describe(obj *unstructured.Unstructured) string {
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName() + "*"
	}
	if obj.GetNamespace() != "" {
		return obj.GetNamespace() + "/" + name
	}
	return name
}

// decodeObjects splits YAML or JSON documents into objects, expanding v1 Lists and
// skipping empty documents.
func decodeObjects(text string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			for j := range list.Items {
				objs = append(objs, &list.Items[j])
			}
			continue
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("document %d: apiVersion and kind are required", i)
		}
		if u.GetName() == "" && u.GetGenerateName() == "" {
			return nil, fmt.Errorf("document %d (%s): metadata.name is required", i, u.GetKind())
		}
		objs = append(objs, u)
	}
}

// mapping finds the resource of gvk, refreshing discovery until it is served.
func (c *Cluster) mapping(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	deadline := time.Now().Add(mappingTimeout)
	for {
		m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil {
			return m, nil
		}
		if !meta.IsNoMatchError(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("finding the resource of %s: %w", gvk, err)
		}
		c.mapper.Reset()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond): // polling interval
		}
	}
}

func (c *Cluster) applyObject(ctx context.Context, ns string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	m, err := c.mapping(ctx, obj.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	ri := c.dyn.Resource(m.Resource)
	var target dynamic.ResourceInterface = ri
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			if ns == "" {
				return nil, errors.New("namespaced object without metadata.namespace and no namespace given")
			}
			obj.SetNamespace(ns)
		}
		target = ri.Namespace(obj.GetNamespace())
	} else {
		obj.SetNamespace("")
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if obj.GetName() == "" {
		return target.Create(rctx, obj, metav1.CreateOptions{FieldManager: FieldManager})
	}
	return target.Apply(rctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
}

// WaitCRD waits until CustomResourceDefinition name is established, its names accepted and
// every served version listed by discovery, so custom resources can be created right away.
func (c *Cluster) WaitCRD(t testing.TB, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	deadline := time.Now().Add(mappingTimeout)
	var last error
	for {
		crd, err := c.crdServed(name)
		if err == nil {
			c.mapper.Reset()
			return crd
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("kube: CRD %s not served after %v: %v", name, mappingTimeout, last)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func (c *Cluster) crdServed(name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	ctx, cancel := requestContext()
	defer cancel()
	crd, err := c.apiext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	conds := map[apiextensionsv1.CustomResourceDefinitionConditionType]apiextensionsv1.ConditionStatus{}
	for _, cond := range crd.Status.Conditions {
		conds[cond.Type] = cond.Status
	}
	for _, want := range []apiextensionsv1.CustomResourceDefinitionConditionType{apiextensionsv1.Established, apiextensionsv1.NamesAccepted} {
		if conds[want] != apiextensionsv1.ConditionTrue {
			return nil, fmt.Errorf("condition %s is %q", want, conds[want])
		}
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}.String()
		list, err := c.client.Discovery().ServerResourcesForGroupVersion(gv)
		if err != nil {
			return nil, fmt.Errorf("discovery of %s: %w", gv, err)
		}
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == crd.Spec.Names.Plural }) {
			return nil, fmt.Errorf("discovery of %s does not list %s yet", gv, crd.Spec.Names.Plural)
		}
	}
	return crd, nil
}

// ApplyGatewayAPICRDs applies the Gateway API's standard-channel CRDs of the given kinds
// (plural resource names such as "httproutes", "grpcroutes") from the sigs.k8s.io/gateway-api
// module the workspace requires, and waits until each is established.
func (c *Cluster) ApplyGatewayAPICRDs(t testing.TB, kinds ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("kube: locating sigs.k8s.io/gateway-api: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	for _, kind := range kinds {
		data, err := os.ReadFile(filepath.Join(dir, "gateway.networking.k8s.io_"+kind+".yaml"))
		if err != nil {
			t.Fatalf("kube: Gateway API CRD %s: %v", kind, err)
		}
		c.Apply(t, "", string(data))
		c.WaitCRD(t, kind+".gateway.networking.k8s.io")
	}
}
