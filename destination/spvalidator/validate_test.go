package spvalidator_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/l5d-go/l5d/destination/spvalidator"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func TestAPIServerRefusesInvalidProfiles(t *testing.T) {
	c := kube.Shared(t)
	crd, err := os.ReadFile("../../deploy/crds/serviceprofile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(crd))
	c.WaitCRD(t, "serviceprofiles.linkerd.io")
	ns := c.Namespace(t)
	srv := kube.ServeHTTPS(t, &spvalidator.Handler{ClusterDomain: "cluster.local"})
	c.RegisterValidatingWebhook(t, kube.Webhook{Name: "sp-validator.l5d.test", URL: srv.URL, CABundle: srv.CABundle, Namespaces: []string{ns},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"linkerd.io"}, APIVersions: []string{"*"}, Resources: []string{"serviceprofiles"}},
		}}})
	good := `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.` + ns + `.svc.cluster.local}
spec:
  routes:
  - name: books
    condition: {method: GET, pathRegex: '/books/[0-9]+'}
    timeout: 300ms
    responseClasses: [{condition: {status: {min: 500, max: 599}}, isFailure: true}]
  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10, ttl: 10s}
`
	c.Apply(t, ns, good)
	for _, tc := range []struct{ yaml, field string }{
		{strings.Replace(good, "web."+ns, "web.elsewhere", 1), "metadata.name"},
		{strings.Replace(good, "'/books/[0-9]+'", "'/books/[0-9'", 1), "spec.routes[0].condition.pathRegex"},
		{strings.Replace(good, "timeout: 300ms", "timeout: soon", 1), "spec.routes[0].timeout"},
		{strings.Replace(good, "min: 500, max: 599", "min: 599, max: 500", 1), "status"},
		{strings.Replace(good, "ttl: 10s", "ttl: forever", 1), "spec.retryBudget.ttl"},
	} {
		_, err := c.ApplyYAML(t.Context(), ns, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("want a refusal naming %s, got %v", tc.field, err)
		}
	}
}

// TestMalformedReviewIs400 checks that bodies the API server never sends get an HTTP error
// naming the problem; reviews without a UID, of another apiVersion or larger than any object
// used to be answered (pkg/webhook's checks now apply, as to the other webhooks).
func TestMalformedReviewIs400(t *testing.T) {
	for _, tc := range []struct {
		name, method, body, want string
		code                     int
	}{
		{"not json", "POST", "{nope", "invalid AdmissionReview", http.StatusBadRequest},
		{"no uid", "POST", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"group":"linkerd.io","kind":"ServiceProfile"}}}`, "without uid", http.StatusBadRequest},
		{"other apiVersion", "POST", `{"apiVersion":"v1","kind":"Pod","request":{"uid":"1","kind":{"kind":"ServiceProfile"}}}`, "want admission.k8s.io/v1", http.StatusBadRequest},
		{"oversized", "POST", strings.Repeat(" ", 5<<20), "larger than", http.StatusRequestEntityTooLarge},
		{"GET", "GET", "", "POSTed", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		(&spvalidator.Handler{}).ServeHTTP(rec, httptest.NewRequest(tc.method, "/", bytes.NewBufferString(tc.body)))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: status %d body %q, want %d mentioning %q", tc.name, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
}

func FuzzHandler(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"linkerd.io","kind":"ServiceProfile"},"object":{"metadata":{"name":"a.b.svc.cluster.local","namespace":"b"},"spec":{"routes":[{"name":"x","condition":{"pathRegex":"("}}]}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		(&spvalidator.Handler{ClusterDomain: "cluster.local"}).ServeHTTP(rec, httptest.NewRequest("POST", "/", bytes.NewReader(body)))
		if rec.Code == http.StatusOK {
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("200 with a body that is not JSON: %v", err)
			}
		}
	})
}
