package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServeTLS serves h over HTTPS on addr until ctx ends, then shuts down gracefully (bounded
// by five seconds). The certificate comes from getCert on every handshake, so a
// servingcert.Reloader's GetCertificate makes a rotated Secret take effect without a
// restart. It speaks HTTP/1.1 only (see Serve).
func ServeTLS(ctx context.Context, addr string, h http.Handler, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, h, getCert, log)
}

// Serve is ServeTLS on a listener the caller made. It serves HTTP/1.1 only: the API
// server keeps a connection per concurrent review, each read and answered by one
// goroutine (see below).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	// HTTP/1.1 only: the API server then sends each review on a kept-alive connection
	// that one goroutine reads and answers, where HTTP/2 hands every request and its
	// body between three goroutines (reader, connection loop, handler), each hand-off a
	// wake-up that a loaded node delays, and spends about a tenth more CPU per review
	// (BenchmarkAdmission in injector/webhook). Concurrent reviews get a connection each,
	// kept alive for the next.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Protocols:         protocols,
		Handler:           h,
		TLSConfig:         &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving admission webhook", "addr", ln.Addr().String())
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("webhook server: %w", err)
}
