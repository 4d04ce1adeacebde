package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/l5d-go/l5d/injector/inject"
	"github.com/l5d-go/l5d/test/kube"
)

// typicalReview is an AdmissionReview for a two-container pod (app plus a metrics exporter)
// created by a Deployment's ReplicaSet.
func typicalReview(b *testing.B) []byte {
	yes := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-7d9c8b6f5-", Namespace: "shop",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "7d9c8b6f5"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9c8b6f5", Controller: &yes}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Image: "example/web:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"}}},
			{Name: "exporter", Image: "example/exporter:1", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}},
		}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Operation: admissionv1.Create, Namespace: "shop", Object: runtime.RawExtension{Raw: raw}},
	}
	body, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchHandler(b *testing.B) *Handler {
	values := testValues(b)
	metrics := NewMetrics()
	if err := metrics.Register(prometheus.NewRegistry()); err != nil {
		b.Fatal(err)
	}
	return &Handler{
		Values:  func() *inject.Values { return values },
		Cluster: staticCluster{ns: inject.Namespace{Name: "shop", Annotations: map[string]string{inject.AnnotationInject: "enabled"}}},
		Metrics: metrics,
	}
}

// BenchmarkAdmission measures one AdmissionReview round trip over HTTPS on loopback (decode,
// inject, patch, encode; namespace and owner come from memory as from the informer cache),
// sequentially, reporting p50/p99 latency and requests per second.
func BenchmarkAdmission(b *testing.B) {
	body := typicalReview(b)
	srv := kube.ServeHTTPS(b, benchHandler(b))
	client := srv.Client()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"patchType":"JSONPatch"`)) {
			b.Fatalf("status %d: %s", resp.StatusCode, out)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
}

// BenchmarkInjectOnly is the baseline: the same review answered in-process, no HTTP or TLS.
func BenchmarkInjectOnly(b *testing.B) {
	body := typicalReview(b)
	h := benchHandler(b)
	for b.Loop() {
		review, err := DecodeReview(body)
		if err != nil {
			b.Fatal(err)
		}
		resp := h.Review(context.Background(), review.Request)
		if _, err := json.Marshal(resp); err != nil || resp.Patch == nil {
			b.Fatal("no patch", err)
		}
	}
}
