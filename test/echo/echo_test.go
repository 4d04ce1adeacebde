package echo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	suiteecho "sigs.k8s.io/gateway-api/conformance/utils/echo"
)

// freePorts returns n ports free on loopback now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// writeCert writes a self-signed certificate and key for localhost into dir.
func writeCert(t *testing.T, dir string) (crt, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	crt, key = filepath.Join(dir, "cert.crt"), filepath.Join(dir, "cert.key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, key
}

// startServer runs a Server on loopback ports: HTTP, HTTPS, gRPC, TCP.
func startServer(t *testing.T) (httpPort, tlsPort, grpcPort, tcpPort int) {
	t.Helper()
	p := freePorts(t, 4)
	crt, key := writeCert(t, t.TempDir())
	s := Server{
		HTTPPorts: []int{p[0], p[1]}, TLSPorts: []int{p[1]}, GRPCPorts: []int{p[2]}, TCPPorts: []int{p[3]},
		Cert: crt, Key: key, Version: "v1", Hostname: "echo-v1-abc",
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	// Wait until every port accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range p {
		for {
			c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("echo server port %d not listening: %v", port, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p[0], p[1], p[2], p[3]
}

// TestClientOutputParsedBySuite: the client's output for HTTP, HTTPS and gRPC requests to
// the server is read by the conformance suite's own parser into the status, the pod name,
// the version, the method and the request headers.
func TestClientOutputParsedBySuite(t *testing.T) {
	httpPort, tlsPort, grpcPort, _ := startServer(t)
	cases := []struct {
		name, url, method, proto string
	}{
		{"http", fmt.Sprintf("http://127.0.0.1:%d/some/path?q=1", httpPort), "PUT", "HTTP/1.1"},
		{"https", fmt.Sprintf("https://127.0.0.1:%d/some/path?q=1", tlsPort), "GET", "HTTP/2.0"},
		{"grpc", fmt.Sprintf("grpc://127.0.0.1:%d", grpcPort), "POST", "GRPC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{tc.url, "-H", "X-Echo-Test:one", "-H", "x-other: two"}
			if tc.name != "grpc" {
				args = append(args, "--method="+tc.method)
			}
			req, err := ParseClientArgs(args)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Do(context.Background(), &out, req); err != nil {
				t.Fatal(err)
			}
			r := suiteecho.ParseResponse(out.String())
			if r.Code != "200" || r.Hostname != "echo-v1-abc" || r.Version != "v1" || r.Method != tc.method || r.Protocol != tc.proto {
				t.Errorf("parsed %+v from:\n%s", r, out.String())
			}
			if got := r.RequestHeaders.Get("X-Echo-Test"); got != "one" {
				t.Errorf("request header X-Echo-Test = %q, want one; output:\n%s", got, out.String())
			}
			if got := r.RequestHeaders.Get("X-Other"); got != "two" {
				t.Errorf("request header X-Other = %q, want two; output:\n%s", got, out.String())
			}
			if tc.name == "http" && r.URL != "/some/path?q=1" {
				t.Errorf("URL = %q, want /some/path?q=1", r.URL)
			}
		})
	}
}

// TestClientCountAndRedirect: --count=N prints N responses separated by blank lines, as the
// suite's batch requests split them; a redirect is reported, not followed, with its Location.
func TestClientCountAndRedirect(t *testing.T) {
	httpPort, _, grpcPort, _ := startServer(t)
	for _, u := range []string{fmt.Sprintf("http://127.0.0.1:%d/", httpPort), fmt.Sprintf("grpc://127.0.0.1:%d", grpcPort)} {
		var out bytes.Buffer
		if err := Do(context.Background(), &out, Request{URL: u, Count: 3}); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, sec := range strings.Split(out.String(), "\n\n") {
			if r := suiteecho.ParseResponse(strings.TrimSpace(sec)); r.Hostname == "echo-v1-abc" && r.Code == "200" {
				n++
			}
		}
		if n != 3 {
			t.Errorf("%s --count=3: %d responses parsed from:\n%s", u, n, out.String())
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.RedirectHandler("http://example.org:8083/elsewhere", http.StatusFound)}
	go srv.Serve(ln)
	defer srv.Close()
	var out bytes.Buffer
	if err := Do(context.Background(), &out, Request{URL: "http://" + ln.Addr().String() + "/port"}); err != nil {
		t.Fatal(err)
	}
	r := suiteecho.ParseResponse(out.String())
	if r.Code != "302" || r.ResponseHeaders.Get("Location") != "http://example.org:8083/elsewhere" {
		t.Errorf("redirect parsed as %+v from:\n%s", r, out.String())
	}
}

// TestTCPEcho: the TCP port sends back what it receives.
func TestTCPEcho(t *testing.T) {
	_, _, _, tcpPort := startServer(t)
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("read %q, %v", line, err)
	}
}

// TestParseClientArgs: bad command lines are refused with a message naming the problem.
func TestParseClientArgs(t *testing.T) {
	for _, args := range [][]string{{}, {"http://a", "-H", "novalue"}, {"http://a", "--count=0"}, {"http://a", "--bogus"}, {"http://a", "-H"}} {
		if _, err := ParseClientArgs(args); err == nil {
			t.Errorf("ParseClientArgs(%q) accepted", args)
		}
	}
	r, err := ParseClientArgs([]string{"http://echo/x", "--method=POST", "-H", "Host:foo", "--count=4"})
	if err != nil || r.Method != "POST" || r.Count != 4 || r.Headers.Get("Host") != "foo" {
		t.Fatalf("got %+v, %v", r, err)
	}
}

// TestH2C: the plain HTTP ports also speak HTTP/2 with prior knowledge (h2c), as a proxy
// forwarding HTTP/2 to the application does.
func TestH2C(t *testing.T) {
	httpPort, _, _, _ := startServer(t)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/h2c", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || !strings.Contains(string(b), "Proto=HTTP/2.0") {
		t.Errorf("%s:\n%s", resp.Proto, b)
	}
}
