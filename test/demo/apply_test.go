package demo_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/cli/goldenmetrics"
	"github.com/l5d-go/l5d/test/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// TestDemoManifestsApply applies app.yaml to a real API server, which validates every
// object, and finds the four demo deployments with the scraper.
func TestDemoManifestsApply(t *testing.T) {
	c := kube.Shared(t)
	b, err := os.ReadFile("app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Client().CoreV1().Namespaces().Delete(context.Background(), "l5d-demo", metav1.DeleteOptions{})
	})
	c.Apply(t, "", string(b))
	snap, err := (&goldenmetrics.Scraper{Client: c.Client(), Namespace: "l5d-demo"}).Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range snap.Resources {
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "catalog,ratings,traffic,web" {
		t.Errorf("deployments in l5d-demo: %v, want catalog, ratings, traffic and web", names)
	}
}
