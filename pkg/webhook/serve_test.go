package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/l5d-go/l5d/pkg/certs"
)

// TestServeLargeAnswers: answers larger than the connection's write buffer (written by the
// handler itself) and small ones, in turn on one kept-alive connection, each arrive whole
// with their request's UID.
func TestServeLargeAnswers(t *testing.T) {
	ca := newCA(t, "answers-ca")
	cert := issueLeaf(t, ca)
	patchOf := func(name string) []byte {
		n, _ := strconv.Atoi(name)
		return fmt.Appendf(nil, `[{"op":"add","path":"/metadata/annotations","value":{"a":"%s"}}]`, bytes.Repeat([]byte{'x'}, n))
	}
	h := &Handler{Review: func(_ context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		return Patched(patchOf(req.Name))
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ln, h, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.NewPool(ca.Cert), ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	conns := 0
	for i, size := range []int{100, 5000, 10, 40000, 3000, 100000} {
		uid := "u" + strconv.Itoa(i)
		body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `","name":"` + strconv.Itoa(size) + `","kind":{"kind":"Pod"}}}`
		req, err := http.NewRequest(http.MethodPost, "https://"+ln.Addr().String(), bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) {
			if !c.Reused {
				conns++
			}
		}}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("answer %d: %v", size, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err != nil || json.Unmarshal(raw, &out) != nil || out.Response == nil {
			t.Fatalf("answer %d: %v, body %.200q", size, err, raw)
		}
		if string(out.Response.UID) != uid || !bytes.Equal(out.Response.Patch, patchOf(strconv.Itoa(size))) ||
			resp.ContentLength != int64(len(raw)) {
			t.Errorf("answer %d: uid %q, patch of %d bytes, Content-Length %d for %d bytes", size, out.Response.UID, len(out.Response.Patch), resp.ContentLength, len(raw))
		}
	}
	if conns != 1 {
		t.Errorf("%d connections for the answers, want 1 kept alive", conns)
	}
}
