// Package status writes the status of routes whose parent is a Service: one entry in
// status.parents per Service parentRef, written by controller linkerd.io/policy-controller,
// with conditions Accepted (True; False with reason NoMatchingParent when the Service is
// missing, or UnsupportedValue when the route is invalid) and ResolvedRefs (True; False with
// reason BackendNotFound when a backend Service is missing). Entries of other controllers
// are kept. It also writes the Accepted condition of EgressNetworks. A status is written
// only when it changes, and only by the replica holding the coordination.k8s.io Lease
// (see Run), so replicas never fight over it.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/outbound"
	"github.com/l5d-go/l5d/policy/routes"
)

// ControllerName is the controllerName of the status entries this package writes.
const ControllerName = "linkerd.io/policy-controller"

// LeaseName is the Lease the writing replica holds.
const LeaseName = "policy-controller-write"

// Config says where the lease lives and who we are.
type Config struct {
	Namespace string // the controller's namespace, where the Lease is
	Identity  string // this replica's identity (its pod name)
	// ClusterNetworks are the cluster's networks, which an EgressNetwork may not cover.
	ClusterNetworks []netip.Prefix
	// Lease timings; zero means 15s, 10s and 2s (client-go's usual values).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Writer reconciles route statuses from the outbound index.
type Writer struct {
	idx    *outbound.Index
	dyn    dynamic.Interface
	client kubernetes.Interface
	cfg    Config
	log    *slog.Logger

	leader atomic.Bool
	writes atomic.Int64
	passes atomic.Int64
}

// New returns a writer; call Run.
func New(idx *outbound.Index, client kubernetes.Interface, dyn dynamic.Interface, cfg Config, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.Default()
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	return &Writer{idx: idx, dyn: dyn, client: client, cfg: cfg, log: log}
}

// IsLeader reports whether this replica holds the lease now.
func (w *Writer) IsLeader() bool { return w.leader.Load() }

// Writes is the number of status updates this replica has made.
func (w *Writer) Writes() int64 { return w.writes.Load() }

// Passes is the number of reconcile passes this replica has completed as leader.
func (w *Writer) Passes() int64 { return w.passes.Load() }

// Run campaigns for the lease until ctx ends, reconciling statuses while it leads. The
// lease is released when ctx ends so another replica takes over at once.
func (w *Writer) Run(ctx context.Context) error {
	if w.cfg.Identity == "" || w.cfg.Namespace == "" {
		return fmt.Errorf("status writer needs a namespace and an identity for lease %s", LeaseName)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: w.cfg.Namespace},
		Client:     w.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: w.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: w.cfg.LeaseDuration, RenewDeadline: w.cfg.RenewDeadline, RetryPeriod: w.cfg.RetryPeriod,
			ReleaseOnCancel: true, Name: LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					w.leader.Store(true)
					w.log.Info("leading route status writes", "lease", LeaseName, "identity", w.cfg.Identity)
					w.reconcileLoop(lctx)
				},
				OnStoppedLeading: func() {
					w.leader.Store(false)
					w.log.Info("stopped leading route status writes", "identity", w.cfg.Identity)
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends; campaign again
	}
	return nil
}

func (w *Writer) reconcileLoop(ctx context.Context) {
	for {
		changed := w.idx.Changed()
		for _, ro := range w.idx.AllRoutes() {
			if ctx.Err() != nil {
				return
			}
			if err := w.reconcile(ctx, ro); err != nil {
				w.log.Warn("writing route status", "namespace", ro.Object.GetNamespace(), "name", ro.Object.GetName(), "error", err)
			}
		}
		for _, u := range w.idx.EgressNetworks() {
			if ctx.Err() != nil {
				return
			}
			if err := w.reconcileEgress(ctx, u); err != nil {
				w.log.Warn("writing EgressNetwork status", "namespace", u.GetNamespace(), "name", u.GetName(), "error", err)
			}
		}
		w.passes.Add(1)
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-time.After(time.Minute): // retry failed writes
		}
	}
}

// parsed is a route's parents and backends, or why it is invalid.
type parsed struct {
	namespace string
	parents   []gatewayv1.ParentReference
	backends  []routes.Backend
	invalid   error
}

func decode[T any](u *unstructured.Unstructured) (*T, error) {
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
		return nil, err
	}
	return v, nil
}

func parse(ro outbound.RouteObject) parsed {
	p := parsed{namespace: ro.Object.GetNamespace()}
	var parents []gatewayv1.ParentReference
	var rules [][]routes.Backend
	var err error
	switch ro.Resource {
	case outbound.RouteResources[0]:
		var r *api.HTTPRoute
		if r, err = decode[api.HTTPRoute](ro.Object); err == nil {
			parents = r.Spec.ParentRefs
			var hr *routes.HTTPRoute
			if hr, err = routes.FromLinkerdHTTP(r); err == nil {
				for _, rule := range hr.Rules {
					rules = append(rules, rule.Backends)
				}
			}
		}
	case outbound.RouteResources[1]:
		var r *gatewayv1.HTTPRoute
		if r, err = decode[gatewayv1.HTTPRoute](ro.Object); err == nil {
			parents = r.Spec.ParentRefs
			var hr *routes.HTTPRoute
			if hr, err = routes.FromGatewayHTTP(r); err == nil {
				for _, rule := range hr.Rules {
					rules = append(rules, rule.Backends)
				}
			}
		}
	case outbound.RouteResources[2]:
		var r *gatewayv1.GRPCRoute
		if r, err = decode[gatewayv1.GRPCRoute](ro.Object); err == nil {
			parents = r.Spec.ParentRefs
			var gr *routes.GRPCRoute
			if gr, err = routes.FromGatewayGRPC(r); err == nil {
				for _, rule := range gr.Rules {
					rules = append(rules, rule.Backends)
				}
			}
		}
	}
	for _, pr := range parents {
		if routes.ParentIsService(pr) {
			p.parents = append(p.parents, pr)
		}
	}
	for _, bs := range rules {
		p.backends = append(p.backends, bs...)
	}
	p.invalid = err
	return p
}

func condition(typ string, ok bool, reason, message string, gen int64) metav1.Condition {
	st := metav1.ConditionTrue
	if !ok {
		st = metav1.ConditionFalse
	}
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: message, ObservedGeneration: gen}
}

// desired computes our status entries for the route.
func (w *Writer) desired(p parsed, gen int64) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	for _, pr := range p.parents {
		accepted := condition("Accepted", true, "Accepted", "", gen)
		switch {
		case p.invalid != nil:
			accepted = condition("Accepted", false, "UnsupportedValue", p.invalid.Error(), gen)
		case w.idx.Service(routes.ParentNamespace(pr, p.namespace), string(pr.Name)) == nil:
			accepted = condition("Accepted", false, "NoMatchingParent", fmt.Sprintf("Service %s/%s not found", routes.ParentNamespace(pr, p.namespace), pr.Name), gen)
		}
		resolved := condition("ResolvedRefs", true, "ResolvedRefs", "", gen)
		for _, b := range p.backends {
			if !b.IsService() {
				resolved = condition("ResolvedRefs", false, "InvalidKind", fmt.Sprintf("backend %s/%s is a %s, not a Service", b.Namespace, b.Name, b.Kind), gen)
				break
			}
			if w.idx.Service(b.Namespace, b.Name) == nil {
				resolved = condition("ResolvedRefs", false, "BackendNotFound", fmt.Sprintf("Service %s/%s not found", b.Namespace, b.Name), gen)
				break
			}
		}
		out = append(out, gatewayv1.RouteParentStatus{ParentRef: pr, ControllerName: ControllerName, Conditions: []metav1.Condition{accepted, resolved}})
	}
	return out
}

// sameConditions compares condition lists ignoring transition times.
func sameConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.LastTransitionTime, y.LastTransitionTime = metav1.Time{}, metav1.Time{}
		if x != y {
			return false
		}
	}
	return true
}

func (w *Writer) reconcile(ctx context.Context, ro outbound.RouteObject) error {
	u := ro.Object
	st, err := decode[struct {
		Status gatewayv1.RouteStatus `json:"status"`
	}](u)
	if err != nil {
		return fmt.Errorf("reading status: %w", err)
	}
	want := w.desired(parse(ro), u.GetGeneration())
	var others, ours []gatewayv1.RouteParentStatus
	for _, ps := range st.Status.Parents {
		if ps.ControllerName == ControllerName {
			ours = append(ours, ps)
		} else {
			others = append(others, ps)
		}
	}
	if len(ours) == len(want) {
		same := true
		for i := range want {
			if !reflect.DeepEqual(ours[i].ParentRef, want[i].ParentRef) || !sameConditions(ours[i].Conditions, want[i].Conditions) {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	now := metav1.Now()
	for i := range want {
		for j := range want[i].Conditions {
			c := &want[i].Conditions[j]
			c.LastTransitionTime = now
			// Keep the transition time of a condition whose status did not change.
			for _, o := range ours {
				if reflect.DeepEqual(o.ParentRef, want[i].ParentRef) {
					for _, oc := range o.Conditions {
						if oc.Type == c.Type && oc.Status == c.Status {
							c.LastTransitionTime = oc.LastTransitionTime
						}
					}
				}
			}
		}
	}
	parents, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&gatewayv1.RouteStatus{Parents: append(others, want...)})
	if err != nil {
		return err
	}
	obj := u.DeepCopy()
	if err := unstructured.SetNestedField(obj.Object, parents["parents"], "status", "parents"); err != nil {
		return err
	}
	if _, err := w.dyn.Resource(ro.Resource).Namespace(u.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating status: %w", err)
	}
	w.writes.Add(1)
	return nil
}
