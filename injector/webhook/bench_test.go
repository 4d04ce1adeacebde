package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/k8s"
	pkgwebhook "github.com/l5d-go/l5d/pkg/webhook"
	"github.com/l5d-go/l5d/test/bench/cpucost"
	"github.com/l5d-go/l5d/test/kube"
)

// typicalPod is a two-container pod (app plus a metrics exporter) created by a Deployment's
// ReplicaSet.
func typicalPod() *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-7d9c8b6f5-", Namespace: "shop",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "7d9c8b6f5"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9c8b6f5", Controller: &yes}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Image: "example/web:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"}}},
			{Name: "exporter", Image: "example/exporter:1", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}},
		}},
	}
}

// typicalReview is an AdmissionReview of typicalPod's creation.
func typicalReview(b *testing.B) []byte { return reviewOf(b, typicalPod()) }

// reviewOf is an AdmissionReview of pod's creation in namespace shop.
func reviewOf(b *testing.B, pod *corev1.Pod) []byte {
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

// BenchmarkAdmission measures the proxy injector as the API server uses it: dry-run creates
// of a typical Deployment pod (typicalPod, its ReplicaSet real) through the test API server,
// which calls the webhook over TLS (keeping the connection), gets the JSON patch and
// applies it. The webhook is served and set up as the injector command does it
// (pkg/webhook.Serve, HTTP/1.1; namespaces and owners from informer caches, read through
// the API server unless cached: OwnerCache). Creates are sequential; reported are the
// create latency as the client sees it (p50-µs, p99-µs), the webhook's own serving time
// per review as measured around its handler (hook-p50-µs, hook-p99-µs), webhook calls per
// create (2: the API server calls it again, reinvocationPolicy IfNeeded, after the
// ServiceAccount admission plugin mounts the token into the injected containers), creates
// per second, the CPU time per create of this process (webhook and client;
// cpu-µs/op) and of the API server (apiserver-cpu-µs/op), and this process's allocations
// (B/op, allocs/op) and garbage collections (gcs/1k-op, per thousand creates). The process
// runs with the command's garbage collector target (SetGCPercent).
func BenchmarkAdmission(b *testing.B) { benchAdmission(b, "enabled") }

// BenchmarkAdmissionUnmutated is the baseline of BenchmarkAdmission: the same creates in a
// namespace annotated linkerd.io/inject: disabled, so the API server calls the webhook,
// which admits the pod unchanged.
func BenchmarkAdmissionUnmutated(b *testing.B) { benchAdmission(b, "disabled") }

func benchAdmission(b *testing.B, mode string) {
	// The process runs at the injector command's garbage collector target, as the
	// command does.
	if SetGCPercent() {
		b.Cleanup(func() { debug.SetGCPercent(100) })
	}
	c := kube.Shared(b)
	ns := c.Namespace(b, kube.WithAnnotations(map[string]string{inject.AnnotationInject: mode}))
	factory := k8s.NewInformerFactory(c.Client(), 0)
	lister := factory.Core().V1().Namespaces().Lister()
	meta, err := metadata.NewForConfig(c.RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	metaFactory := metadatainformer.NewSharedInformerFactory(meta, 0)
	owners := NewOwnerCache(metaFactory)
	if err := k8s.StartAndSync(b.Context(), factory, time.Minute); err != nil {
		b.Fatal(err)
	}
	if err := k8s.StartAndSync(b.Context(), metaFactory, time.Minute); err != nil {
		b.Fatal(err)
	}
	h := benchHandler(b)
	h.Cluster = &KubeCluster{Client: c.Client(), Lister: lister, Owners: owners}
	var mu sync.Mutex
	var hook []time.Duration
	timed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(t0)
		mu.Lock()
		hook = append(hook, d)
		mu.Unlock()
	})
	url, caBundle := serveWebhook(b, timed)
	c.RegisterMutatingWebhook(b, kube.Webhook{Name: "linkerd-proxy-injector.linkerd.io", URL: url, CABundle: caBundle,
		Namespaces: []string{ns}, ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy})
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7d9c8b6f5", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Replicas: new(int32), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example/web:1"}}}}}}
	rs, err = c.Client().AppsV1().ReplicaSets(ns).Create(b.Context(), rs, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pod := typicalPod()
	pod.Namespace = ns
	pod.OwnerReferences[0].UID = rs.UID
	pods := c.Client().CoreV1().Pods(ns)
	create := func() *corev1.Pod {
		got, err := pods.Create(b.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			b.Fatal(err)
		}
		return got
	}
	// The webhook may take a moment to be called for a new configuration: wait for it.
	deadline := time.Now().Add(time.Minute)
	for {
		got := create()
		injected := container(got.Spec.InitContainers, inject.ProxyContainerName) != nil ||
			container(got.Spec.Containers, inject.ProxyContainerName) != nil
		mu.Lock()
		called := len(hook) > 0
		mu.Unlock()
		if called && injected == (mode == "enabled") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("webhook not called as expected within a minute (called %v, injected %v)", called, injected)
		}
	}
	mu.Lock()
	hook = hook[:0]
	mu.Unlock()
	lat := make([]time.Duration, 0, b.N)
	cpu, err := cpucost.Start(b.Context(), c.Client().Discovery().RESTClient())
	if err != nil {
		b.Fatal(err)
	}
	gcs := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(gcs)
	gcBefore := gcs[0].Value.Uint64()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		create()
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	metrics.Read(gcs)
	b.ReportMetric(float64(gcs[0].Value.Uint64()-gcBefore)*1000/float64(len(lat)), "gcs/1k-op")
	cpu.Report(b, len(lat))
	mu.Lock()
	defer mu.Unlock()
	report(b, "", lat)
	report(b, "hook-", hook)
	b.ReportMetric(float64(len(hook))/float64(len(lat)), "calls/op")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
}

// serveWebhook serves h as the injector command does (pkg/webhook.Serve) with a
// certificate for localhost from a new CA, until the benchmark ends; it returns the URL
// and the CA bundle for the webhook configuration.
func serveWebhook(b *testing.B, h http.Handler) (url string, caBundle []byte) {
	ca, err := certs.NewTrustAnchor("injector-bench-ca", certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	key, err := certs.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := ca.IssueLeaf(key.Public(), "localhost", certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- pkgwebhook.Serve(ctx, ln, h, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }, slog.New(slog.DiscardHandler))
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	})
	return "https://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), certs.EncodeCertificatesPEM(ca.Cert)
}

// report reports the p50 and p99 of lat in microseconds, as <prefix>p50-µs and <prefix>p99-µs.
func report(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), prefix+"p99-µs")
}

// BenchmarkWebhookHTTPS is the webhook alone: one AdmissionReview round trip over HTTPS on
// loopback (decode, inject, patch, encode; namespace and owner come from memory),
// sequentially, reporting p50/p99 latency and requests per second.
func BenchmarkWebhookHTTPS(b *testing.B) {
	body := typicalReview(b)
	srv := kube.ServeHTTPS(b, benchHandler(b))
	client := srv.Client()
	lat := make([]time.Duration, 0, b.N)
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
	report(b, "", lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
}

// BenchmarkInjectOnly is the baseline: the same review answered in-process, no HTTP or TLS,
// decoded as the webhook decodes it (the review and the pod's view in one pass).
func BenchmarkInjectOnly(b *testing.B) {
	body := typicalReview(b)
	h := benchHandler(b)
	b.ReportAllocs()
	for b.Loop() {
		if resp := reviewInProcess(b, h, body); resp.Patch == nil {
			b.Fatal("no patch")
		}
	}
}

// reviewInProcess answers the review body as the webhook does, without HTTP: decoded
// with the pod's view, reviewed, and the answer encoded.
func reviewInProcess(b *testing.B, h *Handler, body []byte) *admissionv1.AdmissionResponse {
	view := newPodView()
	review, decoded, err := pkgwebhook.DecodeReviewInto(body, view)
	if err != nil || !decoded {
		b.Fatal(decoded, err)
	}
	resp := h.review(context.Background(), review.Request, view)
	if _, err := json.Marshal(resp); err != nil {
		b.Fatal(err)
	}
	return resp
}

// BenchmarkReviewInjected is the API server's second call for a pod (reinvocationPolicy
// IfNeeded): the review of typicalPod as injected, answered in-process (reviewInProcess)
// without a patch.
func BenchmarkReviewInjected(b *testing.B) {
	h := benchHandler(b)
	injected, _, err := h.Values().InjectPod(inject.Namespace{Name: "shop", Annotations: map[string]string{inject.AnnotationInject: "enabled"}},
		inject.Owner{Kind: "Deployment", Name: "web"}, typicalPod())
	if err != nil {
		b.Fatal(err)
	}
	body := reviewOf(b, injected)
	b.ReportAllocs()
	for b.Loop() {
		if resp := reviewInProcess(b, h, body); !resp.Allowed || resp.Patch != nil {
			b.Fatalf("answer %+v, want allowed unchanged", resp)
		}
	}
}
