package echo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/l5d-go/l5d/test/demo/serve"
)

// EchoMethod is the gRPC method the client calls, Istio's echo service's. Its request and
// response are each one string field numbered 1 (the message), which is the wire format of
// google.protobuf.StringValue, so that type stands for both. The server answers any other
// method the same way.
const EchoMethod = "/proto.EchoTestService/Echo"

// Server is the echo server's configuration (the flags of Istio's echo server).
type Server struct {
	HTTPPorts []int // --port: HTTP/1.1 and h2c (HTTPS for the ports also in TLSPorts)
	GRPCPorts []int // --grpc
	TCPPorts  []int // --tcp: echo back what is received
	TLSPorts  []int // --tls: which of HTTPPorts and GRPCPorts serve TLS with Cert and Key
	Cert, Key string
	Version   string // --version: ServiceVersion of every response
	Cluster   string // --cluster
	Hostname  string // reported as Hostname (default: os.Hostname, the pod's name)
	Log       *slog.Logger
}

// Run serves every port until ctx ends.
func (s Server) Run(ctx context.Context) error {
	if len(s.HTTPPorts)+len(s.GRPCPorts)+len(s.TCPPorts) == 0 {
		return errors.New("echo: no port to serve (--port, --grpc or --tcp)")
	}
	if s.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("echo: hostname: %w", err)
		}
		s.Hostname = h
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	var cert *tls.Certificate
	if len(s.TLSPorts) > 0 {
		c, err := tls.LoadX509KeyPair(s.Cert, s.Key)
		if err != nil {
			return fmt.Errorf("echo: TLS certificate --crt=%s --key=%s: %w", s.Cert, s.Key, err)
		}
		cert = &c
	}
	var tasks []func(context.Context) error
	for _, p := range s.HTTPPorts {
		ln, err := serve.Listen("HTTP", ":"+strconv.Itoa(p))
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		srv := &http.Server{Handler: s.httpHandler(p), ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		if slices.Contains(s.TLSPorts, p) {
			srv.Protocols.SetHTTP2(true)
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"h2", "http/1.1"}})
		} else {
			srv.Protocols.SetUnencryptedHTTP2(true) // h2c, prior knowledge
		}
		tasks = append(tasks, func(ctx context.Context) error { return serve.HTTPServer(ctx, ln, srv) })
	}
	for _, p := range s.GRPCPorts {
		ln, err := serve.Listen("gRPC", ":"+strconv.Itoa(p))
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		var opts []grpc.ServerOption
		if slices.Contains(s.TLSPorts, p) {
			opts = append(opts, grpc.Creds(credentials.NewServerTLSFromCert(cert)))
		}
		srv := s.grpcServer(p, opts...)
		tasks = append(tasks, func(ctx context.Context) error { return serve.GRPC(ctx, ln, srv) })
	}
	for _, p := range s.TCPPorts {
		ln, err := serve.Listen("TCP", ":"+strconv.Itoa(p))
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		tasks = append(tasks, func(ctx context.Context) error { return s.tcp(ctx, ln) })
	}
	s.Log.Info("echo serving", "http", s.HTTPPorts, "grpc", s.GRPCPorts, "tcp", s.TCPPorts, "tls", s.TLSPorts)
	return serve.Run(ctx, tasks...)
}

// httpHandler describes every request in the response body.
func (s Server) httpHandler(port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var b body
		b.field(FieldServiceVersion, s.Version)
		b.field(FieldServicePort, strconv.Itoa(port))
		b.field(FieldHost, r.Host)
		b.field(FieldURL, r.URL.RequestURI())
		b.field(FieldCluster, s.Cluster)
		b.field(FieldMethod, r.Method)
		b.field(FieldProto, r.Proto)
		if r.TLS != nil {
			b.field(FieldAlpn, r.TLS.NegotiatedProtocol)
		}
		if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			b.field(FieldIP, ip)
		}
		b.headers(r.Header)
		b.field(FieldHostname, s.Hostname)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, b.String())
	})
}

// grpcServer answers EchoMethod, and any other method, with the request described as the
// HTTP handler does.
func (s Server) grpcServer(port int, opts ...grpc.ServerOption) *grpc.Server {
	describe := func(ctx context.Context, method string) string {
		md, _ := metadata.FromIncomingContext(ctx)
		var b body
		b.field(FieldServiceVersion, s.Version)
		b.field(FieldServicePort, strconv.Itoa(port))
		if a := md.Get(":authority"); len(a) > 0 {
			b.field(FieldHost, a[0])
		}
		b.field(FieldURL, method)
		b.field(FieldCluster, s.Cluster)
		b.field(FieldMethod, "POST")
		b.field(FieldProto, "GRPC")
		if p, ok := peer.FromContext(ctx); ok {
			if ip, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
				b.field(FieldIP, ip)
			}
		}
		h := http.Header{}
		for k, vs := range md {
			if !strings.HasPrefix(k, ":") {
				h[http.CanonicalHeaderKey(k)] = vs
			}
		}
		b.headers(h)
		b.field(FieldHostname, s.Hostname)
		return b.String()
	}
	opts = append(opts, grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return stream.SendMsg(wrapperspb.String(describe(stream.Context(), method)))
	}))
	return grpc.NewServer(opts...)
}

// tcp echoes back what each connection sends.
func (s Server) tcp(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("echo: TCP %s: %w", ln.Addr(), err)
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
