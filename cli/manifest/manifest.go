// Package manifest rewrites Kubernetes manifests for `linkerd inject` and `linkerd uninject`:
// multi-document YAML or JSON, Lists, and every workload kind with a pod template. Objects
// without a pod template pass through unchanged.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Func rewrites one workload object and returns the result and a one-line report
// ("deployment \"web\" injected"); it must not modify obj.
type Func func(obj runtime.Object) (runtime.Object, string, error)

var decoder = serializer.NewCodecFactory(scheme.Scheme).UniversalDeserializer()

// Transform reads manifests from in, applies fn to every workload (including List items),
// writes the stream to out (JSON documents stay JSON) and each report line to report.
func Transform(in io.Reader, out, report io.Writer, fn Func) error {
	r := kyaml.NewYAMLReader(bufio.NewReader(in))
	first := true
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		res, err := transformDoc(doc, report, fn)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if !first {
			if _, err := io.WriteString(out, "---\n"); err != nil {
				return err
			}
		}
		first = false
		if _, err := out.Write(res); err != nil {
			return err
		}
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

func transformDoc(doc []byte, report io.Writer, fn Func) ([]byte, error) {
	isJSON := bytes.HasPrefix(bytes.TrimSpace(stripComments(doc)), []byte("{"))
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if meta.Kind == "" || meta.APIVersion == "" {
		return nil, errors.New("not a Kubernetes object: apiVersion and kind are required")
	}
	var result any
	switch {
	case meta.Kind == "List" || strings.HasSuffix(meta.Kind, "List"):
		var list struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        map[string]any    `json:"metadata,omitempty"`
			Items           []json.RawMessage `json:"items"`
		}
		if err := yaml.Unmarshal(doc, &list); err != nil {
			return nil, fmt.Errorf("%s: %w", meta.Kind, err)
		}
		items := make([]any, 0, len(list.Items))
		for j, item := range list.Items {
			o, err := transformObject(item, report, fn)
			if err != nil {
				return nil, fmt.Errorf("%s item %d: %w", meta.Kind, j, err)
			}
			items = append(items, o)
		}
		out := map[string]any{"apiVersion": list.APIVersion, "kind": list.Kind, "items": items}
		if list.Metadata != nil {
			out["metadata"] = list.Metadata
		}
		result = out
	default:
		o, err := transformObject(doc, report, fn)
		if err != nil {
			return nil, err
		}
		result = o
	}
	if isJSON {
		b, err := json.MarshalIndent(result, "", "  ")
		return append(b, '\n'), err
	}
	return yaml.Marshal(result)
}

// transformObject returns fn's result for workloads and the unchanged object otherwise.
func transformObject(doc []byte, report io.Writer, fn Func) (any, error) {
	jsonDoc, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var generic map[string]any
	if err := json.Unmarshal(jsonDoc, &generic); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if s, _ := generic["apiVersion"].(string); s == "" {
		return nil, errors.New("not a Kubernetes object: apiVersion and kind are required")
	}
	if s, _ := generic["kind"].(string); s == "" {
		return nil, errors.New("not a Kubernetes object: apiVersion and kind are required")
	}
	obj, gvk, err := decoder.Decode(jsonDoc, nil, nil)
	if err != nil || PodTemplate(obj) == nil {
		return generic, nil
	}
	res, line, err := fn(obj)
	if err != nil {
		return nil, err
	}
	res.GetObjectKind().SetGroupVersionKind(*gvk)
	if line != "" && report != nil {
		fmt.Fprintln(report, line)
	}
	return res, nil
}

// Template is the pod metadata and spec of a workload.
type Template struct {
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
}

// PodTemplate returns the pod template of a workload or Pod, or nil for other kinds.
func PodTemplate(obj runtime.Object) *Template {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &Template{&o.ObjectMeta, &o.Spec}
	case *appsv1.Deployment:
		return &Template{&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec}
	case *appsv1.StatefulSet:
		return &Template{&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec}
	case *appsv1.DaemonSet:
		return &Template{&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec}
	case *appsv1.ReplicaSet:
		return &Template{&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec}
	case *batchv1.Job:
		return &Template{&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec}
	case *batchv1.CronJob:
		return &Template{&o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec}
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return nil
		}
		return &Template{&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec}
	}
	return nil
}

// Describe is "<kind> \"<name>\"" in lower case, as Linkerd's inject reports use.
func Describe(obj runtime.Object) string {
	name := ""
	if m, err := metaOf(obj); err == nil {
		name = m.GetName()
	}
	return fmt.Sprintf("%s %q", strings.ToLower(kindOf(obj)), name)
}

func kindOf(obj runtime.Object) string {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return "object"
	}
	return gvks[0].Kind
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errors.New("object without metadata")
	}
	return m, nil
}
