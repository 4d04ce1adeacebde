package tap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/rpc"
	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
)

// Proxies dials the tap servers of pods.
type Proxies interface {
	// Dial returns a connection to pod's tap server; the caller closes it.
	Dial(pod *corev1.Pod) (*grpc.ClientConn, error)
}

// MTLSProxies dials each pod's tap port with mTLS itself: it presents Certificate (the
// identity named by the proxies' LINKERD2_PROXY_TAP_SVC_NAME) and requires the pod's
// proxy to present the identity of the pod's service account, signed by Roots.
type MTLSProxies struct {
	// Certificate returns the client certificate to present (e.g. a reloading pair).
	Certificate func() (*tls.Certificate, error)
	Roots       *x509.CertPool
	// ControlPlaneNamespace and TrustDomain name the proxies' identities.
	ControlPlaneNamespace, TrustDomain string
	Log                                *slog.Logger
}

// Dial implements Proxies.
func (m *MTLSProxies) Dial(pod *corev1.Pod) (*grpc.ClientConn, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    m.Roots,
		ServerName: certs.WorkloadIdentity(sa, pod.Namespace, m.ControlPlaneNamespace, m.TrustDomain),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return m.Certificate()
		},
	}
	return rpc.NewClient(tapAddr(pod), rpc.ClientOptions{TLS: cfg, Logger: m.Log})
}

// MeshedProxies dials each pod's tap port in plaintext, for a tap server that is itself
// meshed: its own proxy originates the mTLS, as Linkerd's tap controller's does, with the
// tap server's identity and the identity the destination service reports for the pod.
type MeshedProxies struct{ Log *slog.Logger }

// Dial implements Proxies.
func (m MeshedProxies) Dial(pod *corev1.Pod) (*grpc.ClientConn, error) {
	return rpc.NewClient(tapAddr(pod), rpc.ClientOptions{Logger: m.Log})
}

func tapAddr(pod *corev1.Pod) string {
	return net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(inject.ProxyControlPort))
}

// observation is a validated tap: the pods to observe and what to ask their proxies.
type observation struct {
	pods   []*corev1.Pod
	req    *pbtap.ObserveRequest
	perPod uint32 // requests per second per pod
}

// plan resolves req's pods and builds the proxies' ObserveRequest.
func (s *Server) plan(req vizapi.TapByResourceRequest) (*observation, error) {
	all, err := s.Cache.Pods(req.Target.Resource)
	if err != nil {
		return nil, err
	}
	obs := &observation{}
	for _, p := range all {
		if tappable(p) {
			obs.pods = append(obs.pods, p)
		}
	}
	match, err := s.match(req)
	if err != nil {
		return nil, err
	}
	maxRps := req.MaxRps
	if maxRps == 0 {
		maxRps = vizapi.DefaultMaxRps
	}
	if maxRps < 0 || math.IsNaN(maxRps) || math.IsInf(maxRps, 0) {
		return nil, fmt.Errorf("maxRps %v: must be a positive number", req.MaxRps)
	}
	if n := len(obs.pods); n > 0 {
		obs.perPod = uint32(math.Max(1, math.Ceil(maxRps/float64(n))))
	}
	obs.req = &pbtap.ObserveRequest{Limit: obs.perPod, Match: match}
	if req.Extract {
		obs.req.Extract = &pbtap.ObserveRequest_Extract{Extract: &pbtap.ObserveRequest_Extract_Http_{
			Http: &pbtap.ObserveRequest_Extract_Http{Extract: &pbtap.ObserveRequest_Extract_Http_Headers_{Headers: &pbtap.ObserveRequest_Extract_Http_Headers{}}},
		}}
	}
	return obs, nil
}

// match translates the request's match into the proxies' expression: every set field
// must match; --to becomes "destination is one of the resource's pod addresses".
func (s *Server) match(req vizapi.TapByResourceRequest) (*pbtap.ObserveRequest_Match, error) {
	var all []*pbtap.ObserveRequest_Match
	m := req.Match
	if m.To != nil {
		to := *m.To
		if to.Namespace == "" && to.Type != vizapi.Namespace {
			to.Namespace = req.Target.Resource.Namespace
		}
		if _, ok := vizapi.TapResources[to.Type]; !ok {
			return nil, fmt.Errorf("--to: cannot select resources of type %q", to.Type)
		}
		pods, err := s.Cache.Pods(to)
		if err != nil {
			return nil, fmt.Errorf("--to: %w", err)
		}
		var any []*pbtap.ObserveRequest_Match
		for _, p := range pods {
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			any = append(any, &pbtap.ObserveRequest_Match{Match: &pbtap.ObserveRequest_Match_Destination{
				Destination: &pbtap.ObserveRequest_Match_Tcp{Match: &pbtap.ObserveRequest_Match_Tcp_Netmask_{
					Netmask: &pbtap.ObserveRequest_Match_Tcp_Netmask{Ip: netconv.IPAddress(ip), Mask: uint32(ip.BitLen())},
				}},
			}})
		}
		if len(any) == 0 {
			return nil, fmt.Errorf("--to %s/%s: no running pods in namespace %s", to.Type, to.Name, to.Namespace)
		}
		all = append(all, &pbtap.ObserveRequest_Match{Match: &pbtap.ObserveRequest_Match_Any{Any: &pbtap.ObserveRequest_Match_Seq{Matches: any}}})
	}
	httpMatch := func(h *pbtap.ObserveRequest_Match_Http) {
		all = append(all, &pbtap.ObserveRequest_Match{Match: &pbtap.ObserveRequest_Match_Http_{Http: h}})
	}
	if m.Method != "" {
		httpMatch(&pbtap.ObserveRequest_Match_Http{Match: &pbtap.ObserveRequest_Match_Http_Method{Method: method(m.Method)}})
	}
	if m.Scheme != "" {
		httpMatch(&pbtap.ObserveRequest_Match_Http{Match: &pbtap.ObserveRequest_Match_Http_Scheme{Scheme: scheme(m.Scheme)}})
	}
	if m.Authority != "" {
		httpMatch(&pbtap.ObserveRequest_Match_Http{Match: &pbtap.ObserveRequest_Match_Http_Authority{Authority: &pbtap.ObserveRequest_Match_Http_StringMatch{
			Match: &pbtap.ObserveRequest_Match_Http_StringMatch_Exact{Exact: m.Authority}}}})
	}
	if m.Path != "" {
		httpMatch(&pbtap.ObserveRequest_Match_Http{Match: &pbtap.ObserveRequest_Match_Http_Path{Path: &pbtap.ObserveRequest_Match_Http_StringMatch{
			Match: &pbtap.ObserveRequest_Match_Http_StringMatch_Prefix{Prefix: m.Path}}}})
	}
	if len(all) == 0 {
		return nil, nil
	}
	return &pbtap.ObserveRequest_Match{Match: &pbtap.ObserveRequest_Match_All{All: &pbtap.ObserveRequest_Match_Seq{Matches: all}}}, nil
}

func method(m string) *httptypes.HttpMethod {
	m = strings.ToUpper(m)
	if v, ok := httptypes.HttpMethod_Registered_value[m]; ok {
		return &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_Registered(v)}}
	}
	return &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Unregistered{Unregistered: m}}
}

func scheme(s string) *httptypes.Scheme {
	if v, ok := httptypes.Scheme_Registered_value[strings.ToUpper(s)]; ok {
		return &httptypes.Scheme{Type: &httptypes.Scheme_Registered_{Registered: httptypes.Scheme_Registered(v)}}
	}
	return &httptypes.Scheme{Type: &httptypes.Scheme_Unregistered{Unregistered: s}}
}

// observe streams the events of every pod of obs to emit until ctx ends or emit fails.
// Each pod's stream asks for at most perPod requests and is reopened no sooner than a
// second after it was opened, so the whole tap sees at most the requested rate. A pod
// whose stream fails is retried after retryAfter.
func (s *Server) observe(ctx context.Context, obs *observation, emit func([]byte) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	names := newPodIndex(s.Cache)
	var wg sync.WaitGroup
	for _, p := range obs.pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.observePod(ctx, p, obs.req, func(ev *pbtap.TapEvent) error {
				names.annotate(ev)
				b, err := protojson.Marshal(ev)
				if err != nil {
					return fmt.Errorf("encoding a tap event: %w", err)
				}
				return emit(b)
			})
			if err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// errEmit marks a failure to write to the caller: the tap ends.
var errEmit = errors.New("writing to the tap client")

func (s *Server) observePod(ctx context.Context, pod *corev1.Pod, req *pbtap.ObserveRequest, emit func(*pbtap.TapEvent) error) error {
	conn, err := s.Proxies.Dial(pod)
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	defer conn.Close()
	client := pbtap.NewTapClient(conn)
	log := s.Log.With("pod", pod.Namespace+"/"+pod.Name)
	for {
		opened := time.Now()
		err := s.stream(ctx, client, req, emit)
		if errors.Is(err, errEmit) || ctx.Err() != nil {
			return err
		}
		wait := time.Until(opened.Add(time.Second))
		if err != nil {
			log.Warn("tap stream failed", "err", err)
			wait = retryAfter
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (s *Server) stream(ctx context.Context, client pbtap.TapClient, req *pbtap.ObserveRequest, emit func(*pbtap.TapEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := client.Observe(ctx, req)
	if err != nil {
		return err
	}
	for {
		ev, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := emit(ev); err != nil {
			return fmt.Errorf("%w: %w", errEmit, err)
		}
	}
}

// podIndex names the pods behind the addresses of events, refreshed at most every
// podIndexTTL.
type podIndex struct {
	cache *cluster.Cache
	mu    sync.Mutex
	at    time.Time
	byIP  map[netip.Addr]*corev1.Pod
}

const podIndexTTL = 5 * time.Second

func newPodIndex(c *cluster.Cache) *podIndex {
	return &podIndex{cache: c}
}

func (x *podIndex) lookup(a netip.Addr) *corev1.Pod {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byIP == nil || time.Since(x.at) > podIndexTTL {
		x.at, x.byIP = time.Now(), map[netip.Addr]*corev1.Pod{}
		pods, _ := x.cache.AllPods("", "")
		for _, p := range pods {
			if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil && p.Status.Phase == corev1.PodRunning && !p.Spec.HostNetwork {
				x.byIP[ip] = p
			}
		}
	}
	return x.byIP[a]
}

// annotate adds the Kubernetes names of the event's source and destination to their
// metadata labels, as Linkerd's tap API does: "namespace", "pod" and the owner's kind
// ("deployment": "web"); labels the proxy set are kept.
func (x *podIndex) annotate(ev *pbtap.TapEvent) {
	for _, side := range []struct {
		addr *pbnet.TcpAddress
		meta **pbtap.TapEvent_EndpointMeta
	}{{ev.GetSource(), &ev.SourceMeta}, {ev.GetDestination(), &ev.DestinationMeta}} {
		ap, ok := netconv.AddrPort(side.addr)
		if !ok {
			continue
		}
		p := x.lookup(ap.Addr())
		if p == nil {
			continue
		}
		if *side.meta == nil {
			*side.meta = &pbtap.TapEvent_EndpointMeta{}
		}
		m := *side.meta
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		set := func(k, v string) {
			if _, ok := m.Labels[k]; !ok {
				m.Labels[k] = v
			}
		}
		set("namespace", p.Namespace)
		set("pod", p.Name)
		if kind, owner := x.cache.Owner(p); kind != vizapi.Pod {
			set(kind, owner)
		}
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		set("serviceaccount", sa)
	}
}
