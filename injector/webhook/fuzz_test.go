package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/pkg/inject"
	pkgwebhook "github.com/l5d-go/l5d/pkg/webhook"
)

// staticCluster answers lookups from fixed data: decoding and injection are pure logic here,
// the API server tests cover the real lookups.
type staticCluster struct{ ns inject.Namespace }

func (s staticCluster) Namespace(context.Context, string) (inject.Namespace, error) { return s.ns, nil }
func (s staticCluster) Owner(_ context.Context, _ string, p *corev1.Pod) ResolvedOwner {
	return ResolvedOwner{Owner: inject.OwnerOf(p)}
}

// FuzzDecodeReview feeds arbitrary bodies to the decoder and, when they decode, to the
// review logic: nothing may panic, and every answer is either an admission, a denial with a
// message, or a patch that is valid JSON.
func FuzzDecodeReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"a","object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app","ports":[{"containerPort":80}]}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"metadata":{"annotations":{"config.linkerd.io/opaque-ports":"x,1-2","config.linkerd.io/proxy-cpu-limit":"3"}},"spec":{"hostNetwork":true}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	values := testValues(f)
	metrics := NewMetrics()
	if err := metrics.Register(prometheus.NewRegistry()); err != nil {
		f.Fatal(err)
	}
	h := &Handler{
		Values:  func() *inject.Values { return values },
		Cluster: staticCluster{ns: inject.Namespace{Name: "a", Annotations: map[string]string{inject.AnnotationInject: "enabled"}}},
		Metrics: metrics,
	}
	check := func(t *testing.T, resp *admissionv1.AdmissionResponse) {
		switch {
		case resp == nil:
			t.Fatal("nil response")
		case !resp.Allowed && (resp.Result == nil || resp.Result.Message == ""):
			t.Fatal("denial without a message")
		case resp.Patch != nil && !json.Valid(resp.Patch):
			t.Fatalf("patch is not JSON: %q", resp.Patch)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// As served: the review and the pod's view decoded in one pass (or again, raw,
		// when the pod does not fit the view).
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		review, err := pkgwebhook.DecodeReview(body)
		if err != nil {
			if review != nil {
				t.Fatal("review returned with an error")
			}
			if rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge || rec.Body.Len() == 0 {
				t.Fatalf("malformed review answered %d %q", rec.Code, rec.Body)
			}
			return
		}
		var served admissionv1.AdmissionReview
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &served) != nil || served.Response == nil {
			t.Fatalf("review answered %d %q", rec.Code, rec.Body)
		}
		check(t, served.Response)
		check(t, h.Review(context.Background(), review.Request))
	})
}
