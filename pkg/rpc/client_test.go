package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const identityName = "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"

func TestClientOverTLS(t *testing.T) {
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := anchor.NewIssuer(certs.DefaultIssuerCommonName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := issuer.IssueLeaf(key.Public(), identityName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{
		Registerer: prometheus.NewRegistry(),
		TLS: &tls.Config{
			Certificates: []tls.Certificate{certs.TLSCertificate(key, leaf, issuer.ChainFor()...)},
			MinVersion:   tls.VersionTLS13,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	defer func() { cancel(); <-done }()

	roots := certs.NewPool(anchor.Cert)
	tests := []struct {
		name       string
		tls        *tls.Config
		wantCode   codes.Code
		wantDetail string
	}{
		{"trusted identity", &tls.Config{RootCAs: roots, ServerName: identityName, MinVersion: tls.VersionTLS13}, codes.OK, ""},
		{"wrong identity", &tls.Config{RootCAs: roots, ServerName: "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local", MinVersion: tls.VersionTLS13}, codes.Unavailable, "certificate is valid for"},
		{"untrusted anchor", &tls.Config{RootCAs: x509.NewCertPool(), ServerName: identityName, MinVersion: tls.VersionTLS13}, codes.Unavailable, "unknown authority"},
		{"plaintext to TLS server", nil, codes.Unavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			conn, err := NewClient(ln.Addr().String(), ClientOptions{Registerer: reg, TLS: tt.tls})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			callCtx, callCancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer callCancel()
			_, err = healthgrpc.NewHealthClient(conn).Check(callCtx, &healthgrpc.HealthCheckRequest{})
			if status.Code(err) != tt.wantCode || (tt.wantDetail != "" && !strings.Contains(err.Error(), tt.wantDetail)) {
				t.Fatalf("Check: %v, want code %v mentioning %q", err, tt.wantCode, tt.wantDetail)
			}
			got := metricValue(t, reg, "grpc_client_handled_total", map[string]string{
				"grpc_code": tt.wantCode.String(), "grpc_method": "Check", "grpc_service": "grpc.health.v1.Health"})
			if got != 1 {
				t.Errorf("grpc_client_handled_total{grpc_code=%q} = %v, want 1", tt.wantCode, got)
			}
		})
	}
}

// TestKeepaliveEnforcement speaks raw HTTP/2 to the server and pings far more often than
// MinClientPingInterval: the server must close the connection with GOAWAY
// ENHANCE_YOUR_CALM "too_many_pings", protecting itself from abusive clients.
func TestKeepaliveEnforcement(t *testing.T) {
	h := startServer(t, ServerOptions{})
	addr := h.conn.Target()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	const pings = 10
	for i := range pings {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			// The server may already have hung up after enough strikes.
			break
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
				t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
			}
			return
		}
	}
}
