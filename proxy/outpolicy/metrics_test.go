package outpolicy

import (
	"context"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// boundRouter takes p, binds its metrics in reg as a Watcher does, and
// returns a router over it whose backends all resolve to be.
func boundRouter(t *testing.T, reg *metrics.Registry, p *Policy, be *forward.Backend) *Router {
	t.Helper()
	(&Watcher{opts: Options{Metrics: reg}}).bindMetrics(p)
	c := &Current{ready: make(chan struct{})}
	c.p.Store(p)
	return NewRouter(c, nil, func(context.Context, string) (*forward.Backend, bool, error) { return be, true, nil })
}

// TestRecordingDoesNotAllocate: once a hostname's series exists, finding a request's
// series (default route, or a split rule's pick) and recording it takes no allocation.
func TestRecordingDoesNotAllocate(t *testing.T) {
	reg := metrics.New()
	be := &forward.Backend{Balancer: balance.New[*forward.Endpoint](balance.Options{})}
	def, err := FromProto(detect(defaultRoute()))
	if err != nil {
		t.Fatal(err)
	}
	rt := boundRouter(t, reg, def, be)
	record := func() {
		route, backend := rt.DefaultMetrics(be, "web.ns.svc.cluster.local:80")
		if route == nil || backend == nil {
			t.Fatal("no series for the default route")
		}
		backend.Request()
		route.Done(200, metrics.ErrNone, time.Millisecond)
		backend.Done(200, metrics.ErrNone, time.Millisecond)
	}
	record() // the first request resolves the hostname's series
	if n := testing.AllocsPerRun(100, record); n != 0 {
		t.Errorf("default route: %v allocations per request, want 0", n)
	}

	sp, err := FromProto(split(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	rt = boundRouter(t, reg, sp, be)
	r := request("GET", "/")
	routeSplit := func() {
		d, err := rt.RouteRequest(r)
		if err != nil || d.RouteMetrics == nil || d.BackendMetrics == nil {
			t.Fatalf("split: %+v %v, want a decision with series", d, err)
		}
		d.BackendMetrics.Request()
		d.RouteMetrics.Done(200, metrics.ErrNone, time.Millisecond)
		d.BackendMetrics.Done(200, metrics.ErrNone, time.Millisecond)
	}
	for range 20 { // both backends' statuses exist
		routeSplit()
	}
	if n := testing.AllocsPerRun(100, routeSplit); n != 0 {
		t.Errorf("split: %v allocations per request, want 0", n)
	}
}
