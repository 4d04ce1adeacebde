package outpolicy

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routes"
)

// Options configures a Watcher.
type Options struct {
	// Client is the policy controller's OutboundPolicies client; required.
	Client pb.OutboundPoliciesClient
	// Workload is sent as the TrafficSpec's source_workload
	// (LINKERD2_PROXY_POLICY_WORKLOAD), so that the controller can pick the routes of the
	// client's namespace.
	Workload string
	// Metrics registers the route, route-backend and balancer metrics of the policies'
	// rules; required.
	Metrics *metrics.Registry
	// MaxBackoff bounds the jittered backoff between attempts to re-open a stream (5s
	// when zero).
	MaxBackoff time.Duration
	Log        *slog.Logger
}

// Watcher starts OutboundPolicies.Watch streams for outbound targets.
type Watcher struct{ opts Options }

// NewWatcher returns a watcher over opts.Client.
func NewWatcher(opts Options) *Watcher {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	return &Watcher{opts: opts}
}

// Current is the latest policy of one target, updated by its Watch stream and read per
// request without locks.
type Current struct {
	p      atomic.Pointer[Policy]
	target string

	readyOnce sync.Once
	ready     chan struct{}
	// gaveUp is set once a wait for the first answer timed out: later waits return at
	// once, so a policy controller that is away delays a target's requests only once.
	gaveUp atomic.Bool
}

// Load returns the latest policy; nil before the first answer and when the controller
// has none for the target.
func (c *Current) Load() *Policy {
	if c == nil {
		return nil
	}
	return c.p.Load()
}

func (c *Current) setReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// WaitReady waits at most timeout for the controller's first answer about the target
// (which may be that it has no policy). Without an answer in time it returns an error,
// and so do later calls at once until the answer arrives: requests then route without a
// policy, as they do without a policy controller.
func (c *Current) WaitReady(ctx context.Context, timeout time.Duration) error {
	select {
	case <-c.ready:
		return nil
	default:
	}
	if c.gaveUp.Load() {
		return fmt.Errorf("no outbound policy for %s yet", c.target)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the outbound policy of %s: %w", c.target, ctx.Err())
	case <-t.C:
		c.gaveUp.Store(true)
		return fmt.Errorf("no outbound policy for %s within %s", c.target, timeout)
	}
}

// Watch follows the outbound policy of a target until ctx ends: the address addr when it
// is valid (a Service's cluster IP and port), otherwise the Service authority
// "name.ns.svc.cluster.local:port". The stream is re-opened with jittered backoff when it
// breaks; meanwhile the last policy stays in force. An answer that cannot be compiled is
// logged and the previous policy kept.
func (w *Watcher) Watch(ctx context.Context, addr netip.AddrPort, authority string) *Current {
	spec := &pb.TrafficSpec{SourceWorkload: w.opts.Workload}
	target := authority
	if addr.IsValid() {
		spec.Target = &pb.TrafficSpec_Addr{Addr: netconv.TCPAddress(addr)}
		target = addr.String()
	} else {
		spec.Target = &pb.TrafficSpec_Authority{Authority: authority}
	}
	c := &Current{target: target, ready: make(chan struct{})}
	go w.run(ctx, spec, c)
	return c
}

func (w *Watcher) run(ctx context.Context, spec *pb.TrafficSpec, c *Current) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		got, err := w.stream(ctx, spec, c)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = 100 * time.Millisecond
		}
		switch status.Code(err) {
		case codes.Unimplemented, codes.NotFound, codes.InvalidArgument:
			// The controller has no policy for the target (or serves none): the target
			// routes as it would without a policy controller.
			c.setReady()
			w.opts.Log.Debug("no outbound policy for target", "target", c.target, "error", err)
		default:
			if c.p.Load() != nil {
				w.opts.Log.Warn("outbound policy stream ended; keeping the last policy", "target", c.target, "error", err)
			} else {
				w.opts.Log.Debug("outbound policy stream failed", "target", c.target, "error", err)
			}
		}
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, w.opts.MaxBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stream runs one Watch stream; got reports whether it delivered an answer.
func (w *Watcher) stream(ctx context.Context, spec *pb.TrafficSpec, c *Current) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := w.opts.Client.Watch(sctx, spec)
	if err != nil {
		return false, fmt.Errorf("opening OutboundPolicies.Watch for %s: %w", c.target, err)
	}
	for {
		m, err := s.Recv()
		if err != nil {
			return got, fmt.Errorf("OutboundPolicies.Watch for %s: %w", c.target, err)
		}
		got = true
		p, err := FromProto(m)
		if err != nil {
			w.opts.Log.Warn("ignoring an invalid outbound policy; keeping the last one", "target", c.target, "error", err)
			c.setReady()
			continue
		}
		w.bindRoutes(p, c.target)
		w.bindMetrics(p)
		old := c.p.Swap(p)
		releaseGauges(old, p)
		c.setReady()
	}
}

// bindRoutes gives each rule with a timeout or retries, and every rule under failure
// accrual, the route its requests are forwarded under, with route metrics labelled by
// the target and the route.
func (w *Watcher) bindRoutes(p *Policy, target string) {
	for _, r := range p.Rules() {
		if r.Timeout <= 0 && r.Retries == 0 && p.accrual == nil {
			continue
		}
		labels := metrics.Labels("direction", "outbound", "dst", target,
			"route_group", r.Group, "route_kind", r.Kind, "route_name", r.Name)
		r.route = &routes.Route{Name: r.Name, Timeout: r.Timeout,
			Retryable: r.Retries > 0, MaxRetries: r.Retries, RetryOn: r.retryOn, Accrual: p.accrual,
			Metrics: w.opts.Metrics.Route(labels), Actual: w.opts.Metrics.RouteActual(labels),
			RetryRequests: w.opts.Metrics.RouteRetries(p.grpc, metrics.Join(p.parent.ParentLabels(), r.ref.RouteLabels())),
			Retries:       w.opts.Metrics.Counter("route_retry_total", "Total count of retries of requests on ServiceProfile routes.", labels),
			Skipped: w.opts.Metrics.Counter("route_retry_skipped_total",
				"Total count of failed requests on retryable ServiceProfile routes not retried because the retry budget was exhausted.",
				metrics.Join(labels, `reason="budget"`))}
	}
}
