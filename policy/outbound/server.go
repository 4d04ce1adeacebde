package outbound

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/policy/workload"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
)

// Server is the OutboundPolicies gRPC service.
type Server struct {
	pb.UnimplementedOutboundPoliciesServer
	idx *Index
	cfg Config
	log *slog.Logger
}

// New returns the service over idx.
func New(idx *Index, cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	return &Server{idx: idx, cfg: cfg, log: log}
}

// answer computes the policy for spec. An unknown Service authority is NotFound; an
// address that is no Service's cluster IP gets the policy of the EgressNetwork covering
// it (see Index.egressNetwork), else an opaque forward to that address.
func (s *Server) answer(spec *pb.TrafficSpec) (*pb.OutboundPolicy, error) {
	switch t := spec.GetTarget().(type) {
	case *pb.TrafficSpec_Authority:
		tg, err := ParseAuthority(t.Authority, s.cfg.ClusterDomain)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		svc := s.idx.service(tg.Namespace, tg.Name)
		if svc == nil {
			return nil, status.Errorf(codes.NotFound, "service %s/%s not found", tg.Namespace, tg.Name)
		}
		return s.policy(svc, tg.Port, spec), nil
	case *pb.TrafficSpec_Addr:
		ap, ok := netconv.AddrPort(t.Addr)
		if !ok || ap.Port() == 0 {
			return nil, status.Error(codes.InvalidArgument, "target address is not an IP address with a TCP port")
		}
		if svc := s.idx.byClusterIP(ap.Addr()); svc != nil {
			return s.policy(svc, ap.Port(), spec), nil
		}
		clientNS := clientNamespace(spec)
		if en := s.idx.egressNetwork(ap.Addr(), clientNS, s.cfg); en != nil {
			return s.cfg.egressPolicy(en, ap, s.idx.egressRoutes(en, ap.Port(), clientNS, s.log), s.idx.service), nil
		}
		return forwardPolicy(ap), nil
	default:
		return nil, status.Error(codes.InvalidArgument, "traffic spec has neither an authority nor an address target")
	}
}

// policy is the answer for port of svc to the client named in spec.
func (s *Server) policy(svc *corev1.Service, port uint16, spec *pb.TrafficSpec) *pb.OutboundPolicy {
	att := s.idx.routesFor(svc, port, clientNamespace(spec), s.log)
	return s.cfg.servicePolicy(svc, port, att, s.idx.service, s.log)
}

// clientNamespace is the namespace of the client spec names, "" when it names none.
func clientNamespace(spec *pb.TrafficSpec) string {
	if w, err := workload.Parse(spec.GetSourceWorkload()); err == nil {
		return w.Namespace
	}
	return ""
}

// Get implements the service.
func (s *Server) Get(_ context.Context, spec *pb.TrafficSpec) (*pb.OutboundPolicy, error) {
	return s.answer(spec)
}

// Watch implements the service: the policy now, then again whenever it changes.
func (s *Server) Watch(spec *pb.TrafficSpec, stream grpc.ServerStreamingServer[pb.OutboundPolicy]) error {
	ctx := stream.Context()
	var last *pb.OutboundPolicy
	for {
		changed := s.idx.Changed()
		p, err := s.answer(spec)
		if err != nil {
			return err
		}
		if last == nil || !proto.Equal(last, p) {
			if err := stream.Send(p); err != nil {
				return err
			}
			last = p
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
