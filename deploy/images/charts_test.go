package images

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/l5d-go/l5d/deploy"
)

var imageLineRe = regexp.MustCompile(`(?m)^\s*(?:- )?image: *"?([^"\s]+)"?\s*$`)

// TestChartsNameTheseImages: every image the charts (rendered at version "dev", the charts'
// appVersion) and the demo app's manifest name is one make images builds, under the same
// name once Docker Hub's defaults are spelt out (prom/prometheus is
// docker.io/prom/prometheus).
func TestChartsNameTheseImages(t *testing.T) {
	const version = "dev"
	built := map[string]bool{}
	canonical := func(ref string) (string, error) {
		r, err := name.ParseReference(ref)
		if err != nil {
			return "", err
		}
		return r.Context().Name() + ":" + r.Identifier(), nil
	}
	for _, i := range All() {
		for _, ref := range i.Refs(version) {
			c, err := canonical(ref)
			if err != nil {
				t.Fatal(err)
			}
			built[c] = true
		}
	}
	var docs []string
	goldens, err := filepath.Glob("../testdata/*.golden.yaml")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no rendered charts in deploy/testdata: %v", err)
	}
	for _, f := range append(goldens, "../../test/demo/app.yaml") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	cni, err := deploy.Render(deploy.CNIChart, deploy.Options{Namespace: "linkerd-cni"})
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, string(cni))
	mc, err := deploy.Render(deploy.MulticlusterChart, deploy.Options{Namespace: "linkerd-multicluster",
		Values: map[string]any{"linkerdVersion": version, "controllers": []any{map[string]any{"link": map[string]any{"ref": map[string]any{"name": "east"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, string(mc))
	jaeger, err := deploy.Render(deploy.JaegerChart, deploy.Options{Namespace: "linkerd-jaeger", Values: map[string]any{"linkerdVersion": version}})
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, string(jaeger))
	seen := 0
	for _, d := range docs {
		for _, m := range imageLineRe.FindAllStringSubmatch(d, -1) {
			full, err := canonical(m[1])
			if err != nil {
				t.Errorf("image %q: %v", m[1], err)
				continue
			}
			if !built[full] {
				t.Errorf("image %s (%s) is not built by make images", m[1], full)
			}
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("no image found in the charts")
	}
	if !strings.Contains(string(mc), "ghcr.io/l5d-go/service-mirror:") {
		t.Error("the multicluster chart names no service-mirror image")
	}
	if !strings.Contains(string(jaeger), "jaegertracing/all-in-one:") {
		t.Error("the jaeger chart names no all-in-one image")
	}
	if !strings.Contains(string(cni), "ghcr.io/l5d-go/cni-plugin:") {
		t.Error("the CNI chart names no cni-plugin image")
	}
}
