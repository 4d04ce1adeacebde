package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestValueSources checks Helm's order of value sources: values files (later over earlier),
// then --set, --set-string (kept a string) and --set-file (a file's content), each over the
// ones before; and that a missing file is refused naming the flag.
func TestValueSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", "controllerLogLevel: debug\ncontrollerReplicas: 2\nclusterDomain: a.local\n")
	b := write("b.yaml", "controllerReplicas: 3\n")
	note := write("note.txt", "10.1.0.0/16")
	vals, err := Overrides(map[string]any{"clusterDomain": "base.local", "controllerUID": 1}, Options{
		ValueFiles: []string{a, b},
		Sets:       []string{"controllerLogLevel=warn"},
		SetStrings: []string{"controllerUID=2103"},
		SetFiles:   []string{"clusterNetworks=" + note},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"controllerLogLevel": "warn", "controllerReplicas": float64(3), "clusterDomain": "a.local",
		"controllerUID": "2103", "clusterNetworks": "10.1.0.0/16",
	} {
		got := vals[k]
		if n, ok := got.(int64); ok {
			got = float64(n)
		}
		if got != want {
			t.Errorf("%s = %#v, want %#v", k, vals[k], want)
		}
	}
	for _, o := range []Options{{ValueFiles: []string{filepath.Join(dir, "none.yaml")}}, {SetFiles: []string{"a=" + filepath.Join(dir, "none")}}} {
		_, err := Overrides(map[string]any{}, o)
		if err == nil || !(strings.Contains(err.Error(), "--values") || strings.Contains(err.Error(), "--set-file")) {
			t.Errorf("%+v: error %v, want one naming the flag", o, err)
		}
	}
}

// TestFormatJSON checks -o json: the same objects as the YAML, each as JSON; and that an
// unknown format is refused.
func TestFormatJSON(t *testing.T) {
	out, err := Render(Options{Namespace: "l5d-json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	js, err := Format(out, "json")
	if err != nil {
		t.Fatal(err)
	}
	var yamlDocs, jsonDocs []map[string]any
	for _, d := range strings.Split(string(out), "\n---\n") {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(d+"\n"), &m); err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 {
			yamlDocs = append(yamlDocs, m)
		}
	}
	for _, d := range strings.Split(string(js), "---\n") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, d)
		}
		jsonDocs = append(jsonDocs, m)
	}
	if len(jsonDocs) != len(yamlDocs) || len(jsonDocs) < 10 {
		t.Fatalf("%d JSON objects for %d YAML ones", len(jsonDocs), len(yamlDocs))
	}
	for i := range jsonDocs {
		a, _ := json.Marshal(yamlDocs[i])
		b, _ := json.Marshal(jsonDocs[i])
		if string(a) != string(b) {
			t.Errorf("object %d differs:\n%s\n%s", i, a, b)
		}
	}
	if _, err := Format(out, "toml"); err == nil || !strings.Contains(err.Error(), "yaml or json") {
		t.Errorf("-o toml: %v", err)
	}
}
