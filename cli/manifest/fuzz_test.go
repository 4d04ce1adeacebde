package manifest

import (
	"bytes"
	"io"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzTransform feeds arbitrary manifests through inject and uninject: they may fail with
// an error but must never panic, and whatever inject accepts uninject accepts too.
func FuzzTransform(f *testing.F) {
	for _, p := range []string{"../command/testdata/workloads.yaml", "../command/testdata/daemonset.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, 2]\n"))
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: null}}}\n"))
	f.Add([]byte("---\n---\n# only comments\n"))
	inj := Injector(InjectOptions{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := Transform(bytes.NewReader(data), &out, io.Discard, inj); err != nil {
			return
		}
		var un bytes.Buffer
		if err := Transform(bytes.NewReader(out.Bytes()), &un, io.Discard, func(o runtime.Object) (runtime.Object, string, error) {
			return Uninject(o)
		}); err != nil {
			t.Fatalf("uninject rejects inject's output: %v\n%s", err, out.String())
		}
	})
}
