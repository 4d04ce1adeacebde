// Package server implements io.linkerd.proxy.destination.Destination: Get streams a
// Service's ready endpoints as add/remove updates, GetProfile streams its profile (routes,
// retry budget, opaque protocol, or the endpoint of a pod address). Each stream runs on
// its own goroutine, recomputes its answer from the shared informer caches whenever they
// change and sends only differences, so a slow client never holds up others.
package server

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/l5d-go/l5d/destination/authority"
	"github.com/l5d-go/l5d/destination/cluster"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
)

// Config holds the cluster facts the answers depend on.
type Config struct {
	ControllerNamespace string
	ClusterDomain       string
	TrustDomain         string
	DefaultOpaquePorts  proxyconf.Ports
}

// Server is the Destination service.
type Server struct {
	pb.UnimplementedDestinationServer
	idx    *cluster.Index
	cfg    Config
	log    *slog.Logger
	m      metrics
	remote RemoteClusters // nil: no pod-to-pod multicluster
}

type metrics struct {
	streams    prometheus.GaugeVec
	updates    prometheus.CounterVec
	recomputes prometheus.CounterVec
}

// New returns the service over idx.
func New(idx *cluster.Index, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{idx: idx, cfg: cfg, log: log}
	s.m.streams = *prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "destination_streams_open", Help: "Open Get and GetProfile streams."}, []string{"method"})
	s.m.updates = *prometheus.NewCounterVec(prometheus.CounterOpts{Name: "destination_updates_sent_total", Help: "Updates sent on streams."}, []string{"method"})
	s.m.recomputes = *prometheus.NewCounterVec(prometheus.CounterOpts{Name: "destination_stream_recomputes_total",
		Help: "Answers recomputed from the caches by Get and GetProfile streams (once at the start, then once per wake-up by a change that may affect them)."}, []string{"method"})
	cacheSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "endpoints_cache_size", Help: "EndpointSlices held in the informer cache."},
		func() float64 {
			l, err := idx.Slices.List(labels.Everything())
			if err != nil {
				return 0
			}
			return float64(len(l))
		})
	if reg != nil {
		for _, c := range []prometheus.Collector{&s.m.streams, &s.m.updates, &s.m.recomputes, cacheSize} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Get implements the Destination service.
func (s *Server) Get(req *pb.GetDestination, stream grpc.ServerStreamingServer[pb.Update]) error {
	// Not a Service of this cluster: the codes Linkerd's destination answers with, on which
	// proxies (Linkerd's and l5d's) forward to the original destination.
	t, err := authority.Parse(req.GetPath(), s.cfg.ClusterDomain)
	if err != nil {
		s.log.Debug("Get for a name outside the cluster", "path", req.GetPath(), "error", err)
		return status.Errorf(codes.InvalidArgument, "invalid authority %s: %v", req.GetPath(), err)
	}
	if t.IP.IsValid() {
		return status.Errorf(codes.InvalidArgument, "IP queries not supported by Get API: host=%s", t.IP)
	}
	switch svc, err := s.idx.Services.Services(t.Namespace).Get(t.Service); {
	case apierrors.IsNotFound(err):
		return status.Errorf(codes.NotFound, "Service %s.%s not found", t.Service, t.Namespace)
	case err != nil:
		return status.Errorf(codes.Internal, "reading Service %s.%s: %v", t.Service, t.Namespace, err)
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return status.Errorf(codes.InvalidArgument, "invalid authority %s: ExternalName Service", req.GetPath())
	}
	cctx, err := authority.ParseContext(req.GetContextToken())
	if err != nil {
		s.log.Debug("ignoring a bad context token", "error", err)
	}
	s.m.streams.WithLabelValues("Get").Inc()
	defer s.m.streams.WithLabelValues("Get").Dec()
	ctx := stream.Context()
	var sent sentState
	recomputes := s.m.recomputes.WithLabelValues("Get")
	for {
		changed := s.idx.ChangedFor(cluster.EndpointsKey(t.Namespace, t.Service))
		remoteClusters, remoteEndpoints := s.remoteChanged(t)
		recomputes.Inc()
		var updates []*pb.Update
		updates, sent = endpointUpdates(sent, s.endpoints(t, s.nodeZone(cctx.NodeName)))
		for _, u := range updates {
			if err := stream.Send(u); err != nil {
				return err
			}
			s.m.updates.WithLabelValues("Get").Inc()
		}
		select {
		case <-changed:
		case <-remoteClusters:
		case <-remoteEndpoints:
		case <-ctx.Done():
			return nil
		}
	}
}

// GetProfile implements the Destination service.
func (s *Server) GetProfile(req *pb.GetDestination, stream grpc.ServerStreamingServer[pb.DestinationProfile]) error {
	t, err := authority.Parse(req.GetPath(), s.cfg.ClusterDomain)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "GetProfile: %v", err)
	}
	cctx, err := authority.ParseContext(req.GetContextToken())
	if err != nil {
		s.log.Debug("ignoring a bad context token", "error", err)
	}
	s.m.streams.WithLabelValues("GetProfile").Inc()
	defer s.m.streams.WithLabelValues("GetProfile").Dec()
	ctx := stream.Context()
	var last *pb.DestinationProfile
	recomputes := s.m.recomputes.WithLabelValues("GetProfile")
	for {
		// Wait only for what this answer depends on: the Service and its ServiceProfiles,
		// or for an address, whatever has it (a Service's cluster IP, a pod) and the
		// profile of the Service it resolves to.
		var changed, svcChanged <-chan struct{}
		if t.IP.IsValid() {
			changed = s.idx.ChangedFor(cluster.AddrKey(t.IP))
			if svc := s.idx.ServiceByClusterIP(t.IP); svc != nil {
				svcChanged = s.idx.ChangedFor(cluster.ProfileKey(svc.Namespace, svc.Name))
			}
		} else {
			changed = s.idx.ChangedFor(cluster.ProfileKey(t.Namespace, t.Service))
			if t.Hostname != "" { // the answer is one of the Service's endpoints
				svcChanged = s.idx.ChangedFor(cluster.EndpointsKey(t.Namespace, t.Service))
			}
		}
		recomputes.Inc()
		p := s.profile(t, cctx.NS)
		if last == nil || !proto.Equal(last, p) {
			if err := stream.Send(p); err != nil {
				return err
			}
			s.m.updates.WithLabelValues("GetProfile").Inc()
			last = p
		}
		select {
		case <-changed:
		case <-svcChanged:
		case <-ctx.Done():
			return nil
		}
	}
}
