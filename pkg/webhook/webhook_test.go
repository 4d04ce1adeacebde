package webhook

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/servingcert"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func TestDecodeReview(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"empty", ``, "empty body"},
		{"not json", `{{{`, "invalid AdmissionReview"},
		{"wrong kind", `{"apiVersion":"v1","kind":"Pod"}`, "want admission.k8s.io/v1 AdmissionReview"},
		{"no apiVersion", `{"request":{"uid":"1","kind":{"kind":"Pod"}}}`, `apiVersion ""`},
		{"unknown version", `{"apiVersion":"admission.k8s.io/v9","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"}}}`, "admission.k8s.io/v9"},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "no request"},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}`, "without uid"},
		{"no kind", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1"}}`, "without the kind"},
		{"request not an object", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":7}`, "invalid AdmissionReview"},
	} {
		_, err := DecodeReview([]byte(tc.body))
		if !errors.Is(err, ErrBadReview) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrBadReview mentioning %q", tc.name, err, tc.want)
		}
		_, _, err = DecodeReviewInto([]byte(tc.body), new(struct{}))
		if !errors.Is(err, ErrBadReview) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: DecodeReviewInto error %v, want ErrBadReview mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := DecodeReview(bytes.Repeat([]byte{' '}, MaxBodyBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized body: %v, want ErrTooLarge", err)
	}
	if _, _, err := DecodeReviewInto(bytes.Repeat([]byte{' '}, MaxBodyBytes+1), new(struct{})); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized body: %v, want ErrTooLarge", err)
	}
	for _, v := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"} {
		rev, err := DecodeReview([]byte(`{"apiVersion":"` + v + `","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"}}}`))
		if err != nil || rev.APIVersion != v || rev.Request.UID != "u" {
			t.Errorf("%s: %v %+v", v, err, rev)
		}
	}
}

// TestDecodeReviewInto: the request's object lands in the value given, the rest of the
// request as DecodeReview has it; a null object is reported, one that does not fit is an
// error.
func TestDecodeReviewInto(t *testing.T) {
	type view struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"namespace":"n",` +
		`"operation":"CREATE","dryRun":true,"object":{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{}},"oldObject":null}}`
	var v view
	rev, decoded, err := DecodeReviewInto([]byte(body), &v)
	if err != nil || !decoded || v.Metadata.Name != "p" {
		t.Fatalf("decoded %v, %v: %+v", decoded, err, v)
	}
	want, err := DecodeReview([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want.Request.Object.Raw = nil
	if !reflect.DeepEqual(rev, want) {
		t.Errorf("review %+v, want %+v", rev, want)
	}
	v = view{}
	if _, decoded, err := DecodeReviewInto([]byte(strings.Replace(body, `{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{}}`, "null", 1)), &v); err != nil || decoded {
		t.Errorf("null object: decoded %v, %v", decoded, err)
	}
	if _, _, err := DecodeReviewInto([]byte(strings.Replace(body, `"name":"p"`, `"name":7`, 1)), &v); !errors.Is(err, ErrBadReview) {
		t.Errorf("object that does not fit: %v, want ErrBadReview", err)
	}
}

// TestHandler checks the HTTP answers: the review's apiVersion and UID echoed, 405, 400 and
// 413 with messages, and the metrics.
func TestHandler(t *testing.T) {
	m := NewMetrics("test")
	h := &Handler{Metrics: m, Review: func(_ context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if req.Name == "bad" {
			return Denied(http.StatusUnprocessableEntity, "bad is bad")
		}
		return Allowed()
	}}
	post := func(method, body string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/", strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	if code, _ := post(http.MethodGet, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", code)
	}
	if code, body := post(http.MethodPost, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`); code != http.StatusBadRequest || !strings.Contains(body, "no request") {
		t.Errorf("no request: %d %q", code, body)
	}
	if code, body := post(http.MethodPost, strings.Repeat(" ", MaxBodyBytes+1)); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "larger than") {
		t.Errorf("oversized: %d %q", code, body)
	}
	code, body := post(http.MethodPost, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1","name":"bad","kind":{"kind":"ConfigMap"}}}`)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal([]byte(body), &out); code != http.StatusOK || err != nil || out.APIVersion != "admission.k8s.io/v1beta1" ||
		out.Response == nil || out.Response.UID != "u1" || out.Response.Allowed || out.Response.Result.Message != "bad is bad" {
		t.Errorf("denial: %d %s", code, body)
	}
	if got := testutil.ToFloat64(m.BadRequests); got != 2 {
		t.Errorf("bad requests = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.Requests); got != 1 {
		t.Errorf("requests = %v, want 1", got)
	}
}

// TestHandlerObjectReview: a webhook with NewObject gets the object decoded into its value,
// or nil and the raw object when the object does not fit (or is null).
func TestHandlerObjectReview(t *testing.T) {
	type view struct {
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
	}
	var gotObject any
	var gotRaw string
	h := &Handler{NewObject: func() any { return new(view) }, ObjectReview: func(_ context.Context, req *admissionv1.AdmissionRequest, object any) *admissionv1.AdmissionResponse {
		gotObject, gotRaw = object, string(req.Object.Raw)
		return Allowed()
	}}
	for _, tc := range []struct {
		object string
		want   any
	}{
		{`{"spec":{"replicas":3}}`, &view{Spec: struct {
			Replicas int `json:"replicas"`
		}{3}}},
		{`{"spec":{"replicas":"three"}}`, nil},
		{`null`, nil},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(
			`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Thing"},"object":`+tc.object+`}}`)))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.object, rec.Code, rec.Body)
		}
		wantRaw := ""
		if tc.want == nil && tc.object != "null" {
			wantRaw = tc.object
		}
		if !reflect.DeepEqual(gotObject, tc.want) || gotRaw != wantRaw {
			t.Errorf("%s: object %#v raw %q, want %#v raw %q", tc.object, gotObject, gotRaw, tc.want, wantRaw)
		}
	}
}

// newCA returns a certificate authority for the webhook's serving certificates.
func newCA(t *testing.T, cn string) *certs.Authority {
	t.Helper()
	ca, err := certs.NewTrustAnchor(cn, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issueLeaf returns a serving certificate for localhost signed by ca, with its key.
func issueLeaf(t *testing.T, ca *certs.Authority) *tls.Certificate {
	t.Helper()
	key, err := certs.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueLeaf(key.Public(), "localhost", certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// writeLeaf writes a serving certificate for localhost signed by ca to dir/tls.crt and
// dir/tls.key, each through a rename as a kubelet updates a mounted Secret.
func writeLeaf(t *testing.T, ca *certs.Authority, dir string) {
	t.Helper()
	cert := issueLeaf(t, ca)
	leaf := cert.Leaf
	keyPEM, err := certs.EncodePrivateKeyPEM(cert.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": certs.EncodeCertificatesPEM(leaf), "tls.key": keyPEM} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAPIServerFollowsRotatedCertificate serves a validating webhook from certificate files
// through the real API server, then replaces the files with a certificate from a new CA and
// points the webhook configuration at that CA only: the API server's calls succeed again
// only if the running server picked up the new files (the validators used to load theirs
// once, at start).
func TestAPIServerFollowsRotatedCertificate(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	dir := t.TempDir()
	ca1 := newCA(t, "webhook-ca-1")
	writeLeaf(t, ca1, dir)
	reloader, err := servingcert.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Review: func(_ context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if strings.HasPrefix(req.Name, "bad") {
			return Denied(http.StatusUnprocessableEntity, "test webhook refuses "+req.Name)
		}
		return Allowed()
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, h, reloader.GetCertificate, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	name := c.RegisterValidatingWebhook(t, kube.Webhook{Name: "rotation.webhook.l5d.test", URL: url,
		CABundle: certs.EncodeCertificatesPEM(ca1.Cert), Namespaces: []string{ns}, Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}}})
	// waitRefused polls until the API server's call to the webhook gets through TLS and the
	// webhook's refusal comes back.
	waitRefused := func(what string) {
		t.Helper()
		var last error
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bad"}}
			_, last = c.Client().CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
			if last == nil {
				return false, errors.New("a ConfigMap the webhook refuses was created")
			}
			return strings.Contains(last.Error(), "test webhook refuses bad"), nil
		})
		if err != nil {
			t.Fatalf("%s: %v (last answer: %v)", what, err, last)
		}
	}
	waitRefused("first certificate")

	ca2 := newCA(t, "webhook-ca-2")
	writeLeaf(t, ca2, dir)
	// The running server presents the new certificate: a client trusting only the new CA
	// gets through (the reloader checks the files at most once a second).
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.NewPool(ca2.Cert), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true}}
	var answer string
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		resp, err := client.Post(url, "application/json", strings.NewReader(""))
		if err != nil {
			answer = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer = fmt.Sprintf("%s %d %q", resp.Proto, resp.StatusCode, body)
		// HTTP/1.1 although the client offers HTTP/2: Serve speaks HTTP/1.1 only.
		return resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "empty body") && resp.Proto == "HTTP/1.1", nil
	})
	if err != nil {
		t.Fatalf("the server did not pick up the rotated certificate: %v (last answer: %s)", err, answer)
	}
	// From now on the API server gets through only with the new CA: its calls succeed again
	// once it uses the updated configuration.
	api := c.Client().AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cfg, err := api.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[0].ClientConfig.CABundle = certs.EncodeCertificatesPEM(ca2.Cert)
	if _, err := api.Update(context.Background(), cfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRefused("rotated certificate")
}
