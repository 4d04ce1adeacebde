package kube

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HTTPSServer is an HTTPS server on a 127.0.0.1 port with a certificate for 127.0.0.1 and
// localhost signed by a test CA, for the API server to call as a webhook.
type HTTPSServer struct {
	// URL is https://127.0.0.1:<port>, without a trailing slash.
	URL string
	// CABundle is the PEM of the CA that signed the server's certificate: the caBundle of
	// a webhook configuration.
	CABundle []byte

	srv *httptest.Server
}

// webhookCA signs the certificates of every HTTPSServer of the process.
var webhookCA = sync.OnceValues(func() (*authority, error) { return newAuthority("l5d-test-webhook-ca") })

// ServeHTTPS serves h over HTTPS until the test ends.
func ServeHTTPS(t testing.TB, h http.Handler) *HTTPSServer {
	t.Helper()
	s, err := newHTTPSServer(h)
	if err != nil {
		t.Fatalf("kube: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func newHTTPSServer(h http.Handler) (*HTTPSServer, error) {
	ca, err := webhookCA()
	if err != nil {
		return nil, err
	}
	l, err := ca.issue(pkix.Name{CommonName: "l5d-test-webhook"}, []string{"127.0.0.1", "localhost"}, false)
	if err != nil {
		return nil, err
	}
	cert, err := l.tlsCertificate()
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	return &HTTPSServer{URL: srv.URL, CABundle: append([]byte(nil), ca.certPEM...), srv: srv}, nil
}

// Client returns an HTTP client that trusts the server's CA.
func (s *HTTPSServer) Client() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CABundle)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// Close stops the server. ServeHTTPS calls it at the end of the test.
func (s *HTTPSServer) Close() { s.srv.Close() }

// AdmissionFunc answers one admission request; it is an http.Handler speaking
// admission.k8s.io/v1 AdmissionReview. The response's UID is filled in; a nil response
// allows the request.
type AdmissionFunc func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse

// maxReviewBytes bounds an AdmissionReview body; the API server's own limit is 3 MiB objects.
const maxReviewBytes = 8 << 20

// ServeHTTP decodes the AdmissionReview, calls f and writes the reply. A body that is not
// an AdmissionReview with a request gets 400 with the reason.
func (f AdmissionFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, fmt.Sprintf("reading AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, fmt.Sprintf("decoding AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "AdmissionReview without a request", http.StatusBadRequest)
		return
	}
	resp := f(review.Request)
	if resp == nil {
		resp = Allowed()
	}
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&out)
}

// Allowed returns a response admitting the request unchanged.
func Allowed() *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

// Denied returns a response rejecting the request with message.
func Denied(message string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result:  &metav1.Status{Status: metav1.StatusFailure, Message: message, Code: http.StatusForbidden},
	}
}

// Patched returns a response admitting the request with a JSON patch (RFC 6902) applied,
// e.g. `[{"op":"add","path":"/metadata/labels/x","value":"y"}]`.
func Patched(jsonPatch []byte) *admissionv1.AdmissionResponse {
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: jsonPatch, PatchType: &pt}
}
