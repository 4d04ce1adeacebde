package inbound

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/l5d-go/l5d/policy/workload"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// podCacheGrace is how long WatchPort waits for a pod that is not in the cache yet.
const podCacheGrace = 10 * time.Second

// Server is the InboundServerPolicies gRPC service.
type Server struct {
	pb.UnimplementedInboundServerPoliciesServer
	idx *Index
	cfg Config
	log *slog.Logger
}

// New returns the service over idx.
func New(idx *Index, cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{idx: idx, cfg: cfg, log: log}
}

func (s *Server) answer(spec *pb.PortSpec) (*pb.Server, error) {
	w, err := workload.Parse(spec.GetWorkload())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if spec.GetPort() == 0 || spec.GetPort() > 65535 {
		return nil, status.Errorf(codes.InvalidArgument, "port %d is not a TCP port", spec.GetPort())
	}
	pod := s.idx.pod(w.Namespace, w.Pod)
	if pod == nil {
		return nil, status.Errorf(codes.NotFound, "pod %s/%s not found", w.Namespace, w.Pod)
	}
	return s.cfg.serverFor(s.idx, pod, spec.GetPort()), nil
}

// GetPort implements the service.
func (s *Server) GetPort(_ context.Context, spec *pb.PortSpec) (*pb.Server, error) {
	return s.answer(spec)
}

// WatchPort implements the service: the policy now, then again whenever it changes.
func (s *Server) WatchPort(spec *pb.PortSpec, stream grpc.ServerStreamingServer[pb.Server]) error {
	ctx := stream.Context()
	w, err := workload.Parse(spec.GetWorkload())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var last *pb.Server
	// A pod may reach the proxy's watch before the informer cache: wait for it a while.
	patience := time.Now().Add(podCacheGrace)
	for {
		changed := s.idx.ChangedFor(w.Namespace, w.Pod)
		srv, err := s.answer(spec)
		if err != nil {
			if status.Code(err) != codes.NotFound {
				return err
			}
			if last == nil {
				if time.Now().After(patience) {
					return err
				}
				select {
				case <-changed:
				case <-time.After(time.Until(patience)):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			srv = last // a pod being replaced keeps its last policy until it is gone
		}
		if last == nil || !proto.Equal(last, srv) {
			if err := stream.Send(srv); err != nil {
				return err
			}
			last = srv
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
