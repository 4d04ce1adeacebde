package scriptedcp

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
)

// OutboundPolicies is a scripted OutboundPolicies service: Watch answers each target (a
// Service authority, or "ip:port" for an address) with the policy Set for it, pushing
// changes to open streams; a target without one gets NotFound.
type OutboundPolicies struct {
	pb.UnimplementedOutboundPoliciesServer
	mu       sync.Mutex
	policies map[string]*pb.OutboundPolicy
	changed  chan struct{}
	srv      *grpc.Server
}

// NewOutboundPolicies returns a service with no policies.
func NewOutboundPolicies() *OutboundPolicies {
	return &OutboundPolicies{policies: map[string]*pb.OutboundPolicy{}, changed: make(chan struct{})}
}

// Set replaces the policy of target; nil removes it.
func (o *OutboundPolicies) Set(target string, p *pb.OutboundPolicy) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p == nil {
		delete(o.policies, target)
	} else {
		o.policies[target] = p
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

// Start serves the service on addr (TLS when cfg is set) and returns the address.
func (o *OutboundPolicies) Start(addr string, cfg *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("scripted outbound policies: %w", err)
	}
	var opts []grpc.ServerOption
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterOutboundPoliciesServer(srv, o)
	o.mu.Lock()
	o.srv = srv
	o.mu.Unlock()
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Stop kills the server and its streams.
func (o *OutboundPolicies) Stop() {
	o.mu.Lock()
	srv := o.srv
	o.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Watch implements the service.
func (o *OutboundPolicies) Watch(spec *pb.TrafficSpec, s grpc.ServerStreamingServer[pb.OutboundPolicy]) error {
	target := spec.GetAuthority()
	if a := spec.GetAddr(); a != nil {
		ap, _ := netconv.AddrPort(a)
		target = ap.String()
	}
	var last *pb.OutboundPolicy
	for {
		o.mu.Lock()
		p, changed := o.policies[target], o.changed
		o.mu.Unlock()
		if p == nil {
			return status.Errorf(codes.NotFound, "no policy for %s", target)
		}
		if p != last {
			if err := s.Send(p); err != nil {
				return err
			}
			last = p
		}
		select {
		case <-s.Context().Done():
			return nil
		case <-changed:
		}
	}
}
