package outbound

import (
	"cmp"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/routes"
)

// attached is the set of routes attached to one Service port.
type attached struct {
	HTTP []*routes.HTTPRoute
	GRPC []*routes.GRPCRoute
	TLS  []*routes.TLSRoute
	TCP  []*routes.TCPRoute
}

func (a attached) empty() bool { return len(a.HTTP)+len(a.GRPC)+len(a.TLS)+len(a.TCP) == 0 }

func decode[T any](o runtime.Object) *T {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	v := new(T)
	if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v) != nil {
		return nil
	}
	return v
}

func (x *Index) listRoutes(gvr schema.GroupVersionResource, ns string) []runtime.Object {
	x.mu.Lock()
	l := x.routes[gvr]
	x.mu.Unlock()
	if l == nil {
		return nil
	}
	objs, err := l.ByNamespace(ns).List(labels.Everything())
	if err != nil {
		return nil
	}
	return objs
}

// HTTPRoutes returns the valid HTTPRoutes of both flavors in ns; invalid ones are logged
// and skipped.
func (x *Index) HTTPRoutes(ns string, log *slog.Logger) []*routes.HTTPRoute {
	var out []*routes.HTTPRoute
	for _, o := range x.listRoutes(RouteResources[0], ns) {
		if r := decode[api.HTTPRoute](o); r != nil {
			if hr, err := routes.FromLinkerdHTTP(r); err == nil {
				out = append(out, hr)
			} else if log != nil {
				log.Debug("skipping invalid HTTPRoute", "namespace", r.Namespace, "name", r.Name, "error", err)
			}
		}
	}
	for _, o := range x.listRoutes(RouteResources[1], ns) {
		if r := decode[gatewayv1.HTTPRoute](o); r != nil {
			if hr, err := routes.FromGatewayHTTP(r); err == nil {
				out = append(out, hr)
			} else if log != nil {
				log.Debug("skipping invalid HTTPRoute", "namespace", r.Namespace, "name", r.Name, "error", err)
			}
		}
	}
	return out
}

// GRPCRoutes returns the valid GRPCRoutes in ns.
func (x *Index) GRPCRoutes(ns string, log *slog.Logger) []*routes.GRPCRoute {
	var out []*routes.GRPCRoute
	for _, o := range x.listRoutes(RouteResources[2], ns) {
		if r := decode[gatewayv1.GRPCRoute](o); r != nil {
			if gr, err := routes.FromGatewayGRPC(r); err == nil {
				out = append(out, gr)
			} else if log != nil {
				log.Debug("skipping invalid GRPCRoute", "namespace", r.Namespace, "name", r.Name, "error", err)
			}
		}
	}
	return out
}

// attachesTo reports whether m has a parentRef naming Service svc (at port, when the
// parentRef sets one).
func attachesTo(m routes.Meta, svc *corev1.Service, port uint16) bool {
	for _, p := range m.ParentRefs {
		if routes.ParentIsService(p) && string(p.Name) == svc.Name && routes.ParentNamespace(p, m.Namespace) == svc.Namespace &&
			(p.Port == nil || uint16(*p.Port) == port) {
			return true
		}
	}
	return false
}

// routesFor finds the routes attached to port of svc for a client in clientNS. Following
// Linkerd's producer/consumer rule, routes in the client's namespace (consumer routes)
// replace those in the Service's namespace (producer routes) for that client; routes in
// any third namespace are ignored.
func (x *Index) routesFor(svc *corev1.Service, port uint16, clientNS string, log *slog.Logger) attached {
	return x.attachedIn(clientNS, svc.Namespace, func(m routes.Meta) bool { return attachesTo(m, svc, port) }, log)
}

// attachedIn returns the routes for which attaches holds: those in clientNS when there
// are any, else those in parentNS; oldest first.
func (x *Index) attachedIn(clientNS, parentNS string, attaches func(routes.Meta) bool, log *slog.Logger) attached {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pick := func(ns string) attached {
		var a attached
		for _, r := range x.HTTPRoutes(ns, log) {
			if attaches(r.Meta) {
				a.HTTP = append(a.HTTP, r)
			}
		}
		for _, r := range x.GRPCRoutes(ns, log) {
			if attaches(r.Meta) {
				a.GRPC = append(a.GRPC, r)
			}
		}
		for _, o := range x.listRoutes(TLSRoutes, ns) {
			if r := decode[gatewayv1.TLSRoute](o); r != nil {
				if tr, err := routes.FromGatewayTLS(r); err != nil {
					log.Debug("skipping invalid TLSRoute", "namespace", r.Namespace, "name", r.Name, "error", err)
				} else if attaches(tr.Meta) {
					a.TLS = append(a.TLS, tr)
				}
			}
		}
		for _, o := range x.listRoutes(TCPRoutes, ns) {
			if r := decode[gatewayv1.TCPRoute](o); r != nil {
				if tr, err := routes.FromGatewayTCP(r); err != nil {
					log.Debug("skipping invalid TCPRoute", "namespace", r.Namespace, "name", r.Name, "error", err)
				} else if attaches(tr.Meta) {
					a.TCP = append(a.TCP, tr)
				}
			}
		}
		return a
	}
	var a attached
	if clientNS != "" && clientNS != parentNS {
		a = pick(clientNS)
	}
	if a.empty() {
		a = pick(parentNS)
	}
	slices.SortFunc(a.TLS, func(p, q *routes.TLSRoute) int { return compareMeta(p.Meta, q.Meta) })
	slices.SortFunc(a.TCP, func(p, q *routes.TCPRoute) int { return compareMeta(p.Meta, q.Meta) })
	slices.SortFunc(a.HTTP, func(p, q *routes.HTTPRoute) int { return compareMeta(p.Meta, q.Meta) })
	slices.SortFunc(a.GRPC, func(p, q *routes.GRPCRoute) int { return compareMeta(p.Meta, q.Meta) })
	return a
}

// compareMeta orders routes oldest first, then by namespace, name and group.
func compareMeta(p, q routes.Meta) int {
	if c := p.Created.Compare(q.Created); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(p.Namespace, q.Namespace), cmp.Compare(p.Name, q.Name), cmp.Compare(p.Group, q.Group))
}

// RouteObject is a stored route with the resource it is served as.
type RouteObject struct {
	Resource schema.GroupVersionResource
	Object   *unstructured.Unstructured
}

// AllRoutes returns every route of every watched kind in every namespace.
func (x *Index) AllRoutes() []RouteObject {
	var out []RouteObject
	for _, gvr := range RouteResources {
		x.mu.Lock()
		l := x.routes[gvr]
		x.mu.Unlock()
		if l == nil {
			continue
		}
		objs, err := l.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, o := range objs {
			if u, ok := o.(*unstructured.Unstructured); ok {
				out = append(out, RouteObject{Resource: gvr, Object: u})
			}
		}
	}
	return out
}

// Service returns the cached Service ns/name, or nil.
func (x *Index) Service(ns, name string) *corev1.Service { return x.service(ns, name) }

// EgressNetworks returns every EgressNetwork, nil when the API server does not serve them.
func (x *Index) EgressNetworks() []*unstructured.Unstructured {
	x.mu.Lock()
	l := x.routes[api.EgressNetworks]
	x.mu.Unlock()
	if l == nil {
		return nil
	}
	objs, err := l.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	return out
}
