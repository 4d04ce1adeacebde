package webhook

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/inject"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// toGeneric encodes v and decodes it into maps, slices and scalars.
func toGeneric(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(raw, &out)
	return out, err
}

// applyPatch applies add/remove/replace operations (all JSONPatch emits) to a decoded JSON
// document, following RFC 6902.
func applyPatch(t *testing.T, doc any, ops []PatchOp) any {
	t.Helper()
	for _, op := range ops {
		parts := strings.Split(op.Path, "/")[1:]
		for i, p := range parts {
			parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		}
		doc = applyAt(t, doc, parts, op)
	}
	return doc
}

func applyAt(t *testing.T, node any, path []string, op PatchOp) any {
	key := path[0]
	switch n := node.(type) {
	case map[string]any:
		if len(path) > 1 {
			n[key] = applyAt(t, n[key], path[1:], op)
			return n
		}
		if op.Op == "remove" {
			delete(n, key)
		} else {
			n[key] = op.Value
		}
		return n
	case []any:
		if len(path) == 1 && op.Op == "add" {
			if key == "-" {
				return append(n, op.Value)
			}
			i, _ := strconv.Atoi(key)
			return append(n[:i], append([]any{op.Value}, n[i:]...)...)
		}
		i, err := strconv.Atoi(key)
		if err != nil || i >= len(n) {
			t.Fatalf("bad index in %s", op.Path)
		}
		if len(path) > 1 {
			n[i] = applyAt(t, n[i], path[1:], op)
			return n
		}
		if op.Op == "remove" {
			return append(n[:i], n[i+1:]...)
		}
		n[i] = op.Value
		return n
	}
	t.Fatalf("path %s through a non-container", op.Path)
	return nil
}

// testValues are Linkerd's default values with the seed's trust anchors.
func testValues(tb testing.TB) inject.Values {
	tb.Helper()
	pem, err := os.ReadFile("../inject/testdata/seed-anchors.pem")
	if err != nil {
		tb.Fatal(err)
	}
	v := inject.DefaultValues()
	v.IdentityTrustAnchorsPEM = string(pem)
	return v
}

// TestJSONPatchRoundTrip applies the generated patch to the original pod and gets exactly the
// injected pod, for pods with and without existing metadata, init containers and volumes.
func TestJSONPatchRoundTrip(t *testing.T) {
	v := testValues(t)
	pods := map[string]*corev1.Pod{
		"bare": {Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}},
		"full": {
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Labels: map[string]string{"a/b": "c"},
				Annotations: map[string]string{"x~y": "z", inject.AnnotationInject: "enabled", inject.AnnotationNativeSidecarBeta: "false"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "migrate"}},
				Containers:     []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}, {Name: "side"}},
				Volumes:        []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			},
		},
	}
	for name, pod := range pods {
		t.Run(name, func(t *testing.T) {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{inject.AnnotationInject: "enabled"}
			}
			injected, _, err := v.InjectPod(inject.Namespace{Name: "n"}, inject.Owner{}, pod)
			if err != nil || injected == nil {
				t.Fatalf("inject: %v", err)
			}
			raw, err := JSONPatch(pod, injected)
			if err != nil {
				t.Fatal(err)
			}
			var ops []PatchOp
			if err := json.Unmarshal(raw, &ops); err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				if op.Op == "replace" && strings.HasPrefix(op.Path, "/spec/containers") {
					t.Errorf("patch rewrites existing containers: %s", op.Path)
				}
			}
			orig, _ := toGeneric(pod)
			want, _ := toGeneric(injected)
			if got := applyPatch(t, orig, ops); !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("patched pod differs:\n got %s\nwant %s", g, w)
			}
		})
	}
}

// TestJSONPatchTrickyJSON: keys and strings with quotes, escapes, brackets and separators,
// nested and empty containers, nulls and numbers: the patch applied to before gives after.
func TestJSONPatchTrickyJSON(t *testing.T) {
	doc := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct{ before, after string }{
		{`{}`, `{"a":1}`},
		{`{"a":1}`, `{}`},
		{`{"a":[]}`, `{"a":[{}]}`},
		{`{"a":null}`, `{"a":{"b":null}}`},
		{`{"k\"ey":"v,}]","x/y~z":"\\"}`, `{"k\"ey":"v,}]!","x/y~z":"\\\"","ünï<>&":"\u2028"}`},
		{`{"s":"{[\"]}"}`, `{"s":"{[\"]}","t":["{","}",1.5e300,-0,true,false,null]}`},
		{`{"l":[1,2,3]}`, `{"l":[0,1,2,3]}`},
		{`{"l":[1,2,3]}`, `{"l":[1,2,3,"4"]}`},
		{`{"l":[1,2,3]}`, `{"l":[1,3]}`},
		{`{"l":[{"a":"]"},{"b":"["}]}`, `{"l":[{"a":"]"},{"b":"["},{"c":"{"}]}`},
		{`{"n":{"m":{"o":[[],[[]]]}}}`, `{"n":{"m":{"o":[[],[[1]]]}}}`},
		{`{"big":12345678901234567890}`, `{"big":12345678901234567891}`},
	}
	for _, tc := range cases {
		raw, err := JSONPatch(doc(tc.before), doc(tc.after))
		if err != nil {
			t.Fatalf("%s -> %s: %v", tc.before, tc.after, err)
		}
		var ops []PatchOp
		if err := json.Unmarshal(raw, &ops); err != nil {
			t.Fatalf("%s -> %s: patch %s is not JSON: %v", tc.before, tc.after, raw, err)
		}
		if got, want := applyPatch(t, doc(tc.before), ops), doc(tc.after); !reflect.DeepEqual(got, want) {
			t.Errorf("%s patched with %s = %v, want %s", tc.before, raw, got, tc.after)
		}
	}
}

// TestJSONPatchMalformed: the scanner refuses what json.Marshal never writes, without
// panicking.
func TestJSONPatchMalformed(t *testing.T) {
	for _, v := range []string{``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":"1}`, `{"a\u":1}`, `{"a":1}}`, `[`, `[1,`, `[1]x`, `[1,]`} {
		var err error
		if strings.HasPrefix(v, "[") {
			_, err = arrayItems([]byte(v))
		} else {
			_, err = objectMembers(nil, []byte(v))
		}
		if err == nil {
			t.Errorf("%q: no error", v)
		}
	}
}

// BenchmarkJSONPatch is the patch of a typical injected pod: two containers with ports and
// env, native sidecars (the proxy and linkerd-init become init containers).
func BenchmarkJSONPatch(b *testing.B) {
	v := testValues(b)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-7d9c8b6f5-", Namespace: "shop",
			Labels: map[string]string{"app": "web", "pod-template-hash": "7d9c8b6f5"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Image: "example/web:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"}}},
			{Name: "exporter", Image: "example/exporter:1", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}},
		}},
	}
	injected, _, err := v.InjectPod(inject.Namespace{Name: "shop", Annotations: map[string]string{inject.AnnotationInject: "enabled"}}, inject.Owner{Kind: "Deployment", Name: "web"}, pod)
	if err != nil || injected == nil {
		b.Fatalf("inject: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := JSONPatch(pod, injected); err != nil {
			b.Fatal(err)
		}
	}
}
