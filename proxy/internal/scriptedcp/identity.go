package scriptedcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/l5d-go/l5d/pkg/certs"
	pbidentity "github.com/l5d-go/l5d/proto/gen/identity"
)

// PKI is a test trust hierarchy: an anchor and an issuer signed by it.
type PKI struct {
	Anchor, Issuer *certs.Authority
}

// NewPKI makes a trust anchor and an identity issuer valid for a day.
func NewPKI() (*PKI, error) {
	v := certs.ValidFor(time.Now(), 24*time.Hour)
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, v)
	if err != nil {
		return nil, err
	}
	issuer, err := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), v)
	if err != nil {
		return nil, err
	}
	return &PKI{Anchor: anchor, Issuer: issuer}, nil
}

// AnchorsPEM returns the trust anchor in PEM, as LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS holds it.
func (p *PKI) AnchorsPEM() string { return string(certs.EncodeCertificatesPEM(p.Anchor.Cert)) }

// ServerTLS returns a server configuration presenting a leaf for name issued by the PKI.
func (p *PKI) ServerTLS(name string) (*tls.Config, error) {
	key, err := certs.GenerateKey()
	if err != nil {
		return nil, err
	}
	leaf, err := p.Issuer.IssueLeaf(key.Public(), name, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		return nil, err
	}
	c := certs.TLSCertificate(key, leaf, p.Issuer.ChainFor()...)
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}, nil
}

// Identity signs CSRs with the PKI's issuer. It checks that the token equals Token (when
// set) and that the CSR names the requested identity.
type Identity struct {
	pbidentity.UnimplementedIdentityServer
	PKI *PKI
	// Lifetime of issued certificates (default one hour), valid from the moment of issue.
	Lifetime time.Duration
	// Token, when non-empty, is the only accepted token.
	Token string

	calls  atomic.Int64
	mu     sync.Mutex
	tokens []string
	srv    *grpc.Server
}

// Calls returns the number of Certify calls answered with a certificate.
func (s *Identity) Calls() int64 { return s.calls.Load() }

// Tokens returns the tokens received, in order.
func (s *Identity) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

// Certify implements the Identity service.
func (s *Identity) Certify(_ context.Context, req *pbidentity.CertifyRequest) (*pbidentity.CertifyResponse, error) {
	s.mu.Lock()
	s.tokens = append(s.tokens, string(req.GetToken()))
	s.mu.Unlock()
	if s.Token != "" && string(req.GetToken()) != s.Token {
		return nil, status.Error(codes.Unauthenticated, "token rejected")
	}
	csr, err := certs.ParseCSR(req.GetCertificateSigningRequest())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	name, err := certs.CSRName(csr)
	if err != nil || name != req.GetIdentity() {
		return nil, status.Errorf(codes.InvalidArgument, "CSR names %q, request %q (%v)", name, req.GetIdentity(), err)
	}
	life := s.Lifetime
	if life <= 0 {
		life = time.Hour
	}
	now := time.Now()
	leaf, err := s.PKI.Issuer.IssueLeaf(csr.PublicKey, name, certs.Validity{NotBefore: now.Add(-time.Second), NotAfter: now.Add(life)})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.calls.Add(1)
	var inter [][]byte
	for _, c := range s.PKI.Issuer.ChainFor() {
		inter = append(inter, c.Raw)
	}
	return &pbidentity.CertifyResponse{LeafCertificate: leaf.Raw, IntermediateCertificates: inter,
		ValidUntil: timestamppb.New(leaf.NotAfter)}, nil
}

// Start serves on addr with TLS when cfg is non-nil and returns the bound address.
func (s *Identity) Start(addr string, cfg *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("scripted identity: %w", err)
	}
	var opts []grpc.ServerOption
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	pbidentity.RegisterIdentityServer(srv, s)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Stop kills the server.
func (s *Identity) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Leaf parses the first certificate of a tls.Certificate.
func Leaf(c *tls.Certificate) (*x509.Certificate, error) {
	return x509.ParseCertificate(c.Certificate[0])
}
