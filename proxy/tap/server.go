package tap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/l5d-go/l5d/proto/gen/tap"
)

// Reasons a tap client is refused, the reason label of the refusal counter.
const (
	RefusedTLS      = "tls_handshake" // no TLS, or a certificate that does not verify
	RefusedNoID     = "no_identity"   // no client certificate
	RefusedIdentity = "unauthorized"  // a verified identity other than the tap service's
)

// Server serves io.linkerd.proxy.tap.Tap over mesh TLS to the client whose verified
// identity is Name, and refuses every other client at the handshake.
type Server struct {
	pb.UnimplementedTapServer
	Hub *Hub
	// Name is the only identity allowed to tap (LINKERD2_PROXY_TAP_SVC_NAME).
	Name string
	// TLS is the proxy's mesh TLS server configuration (meshtls.ServerConfig): it
	// presents the proxy's certificate and verifies client certificates.
	TLS *tls.Config
	// PeerIdentity is the identity a verified client certificate carries
	// (meshtls.PeerIdentity).
	PeerIdentity func(*x509.Certificate) string
	// Refused, when set, returns the counter of refusals for a reason.
	Refused func(reason string) *atomic.Uint64
	Log     *slog.Logger
}

// Serve serves tap on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// The handshake is authCreds' own: grpc-go's TLS credentials refuse clients that
	// negotiate no ALPN protocol, and a proxy's outbound mesh TLS (the tap API dials
	// through its meshed pod's proxy, as Linkerd's does) offers none.
	cfg := s.TLS.Clone()
	cfg.NextProtos = []string{"h2"}
	srv := grpc.NewServer(grpc.Creds(&authCreds{TransportCredentials: credentials.NewTLS(s.TLS), s: s, cfg: cfg}))
	pb.RegisterTapServer(srv, s)
	stop := context.AfterFunc(ctx, srv.Stop)
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("tap server: %w", err)
	}
	return nil
}

func (s *Server) refuse(reason string, err error) error {
	if s.Refused != nil {
		s.Refused(reason).Add(1)
	}
	if s.Log != nil {
		s.Log.Info("tap client refused", "reason", reason, "error", err)
	}
	return fmt.Errorf("tap refused (%s): %w", reason, err)
}

// authCreds refuses, at the handshake, every client but the tap service.
type authCreds struct {
	credentials.TransportCredentials
	s   *Server
	cfg *tls.Config
}

func (c *authCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc := tls.Server(conn, c.cfg)
	if err := tc.Handshake(); err != nil {
		tc.Close()
		return nil, nil, c.s.refuse(RefusedTLS, err)
	}
	state := tc.ConnectionState()
	info := credentials.TLSInfo{State: state, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	var leaf *x509.Certificate
	if certs := state.PeerCertificates; len(certs) > 0 {
		leaf = certs[0]
	}
	if leaf == nil {
		tc.Close()
		return nil, nil, c.s.refuse(RefusedNoID, errors.New("client presented no certificate"))
	}
	if id := c.s.PeerIdentity(leaf); id != c.s.Name {
		tc.Close()
		return nil, nil, c.s.refuse(RefusedIdentity, fmt.Errorf("client identity %q is not the tap service %q", id, c.s.Name))
	}
	return tc, info, nil
}

func (c *authCreds) Clone() credentials.TransportCredentials {
	return &authCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s, cfg: c.cfg}
}

// Observe streams the events of the requests matching req until its limit is reached
// (when not 0) or the client goes away.
func (s *Server) Observe(req *pb.ObserveRequest, stream grpc.ServerStreamingServer[pb.TapEvent]) error {
	m, err := compile(req.GetMatch())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid match: %v", err)
	}
	buf := s.Hub.Buffer
	if buf <= 0 {
		buf = DefaultBuffer
	}
	ses := &session{match: m, headers: req.GetExtract().GetHttp().GetHeaders() != nil, limit: req.GetLimit(),
		events: make(chan *pb.TapEvent, buf), dropped: s.Hub.Dropped, done: make(chan struct{})}
	s.Hub.open(ses)
	defer s.Hub.close(ses)
	ctx := stream.Context()
	for {
		select {
		case ev := <-ses.events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-ses.done:
			for {
				select {
				case ev := <-ses.events:
					if err := stream.Send(ev); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}
