package localcluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	kptr "k8s.io/utils/ptr"
)

// loadBalancers plays a cloud's load-balancer controller for the cluster's Services of
// type LoadBalancer, as MetalLB does on bare metal: each one without a
// spec.loadBalancerClass gets an address of the cluster's LoadBalancerCIDR written into
// status.loadBalancer.ingress (ipMode VIP), its spec.loadBalancerIP when that is in the
// range and free, else the lowest free one. kube-proxy then DNATs that address's Service
// ports to the endpoints in the node namespace, so a packet routed there (from the node
// itself, its pods, or another cluster joined by Connect) reaches the Service. A Service
// that stops being a LoadBalancer, or is deleted, gives its address back; the status of
// Services with another class is left alone.
//
// The informer's cache lags the API server (the controller's own writes, a restarted
// controller's predecessor's), so a pass may list a Service without the address it
// holds. The cache only says whether there is work: a pass that would hand out an
// address first lists the Services from the API server itself (a consistent read), and
// chooses from that; a Service whose write failed keeps its claim on the address for the
// rest of the pass. Two Services never share an address, even for a moment.
type loadBalancers struct {
	class   string // the spec.loadBalancerClass served; "" for Services of none
	client  kubernetes.Interface
	lister  corelisters.ServiceLister
	pool    netip.Prefix
	log     *slog.Logger
	kick    chan struct{}
	pending map[string]bool // Services whose address could not be written: retried
}

func newLoadBalancers(client kubernetes.Interface, lister corelisters.ServiceLister, pool netip.Prefix, log *slog.Logger) *loadBalancers {
	return &loadBalancers{client: client, lister: lister, pool: pool, log: log, kick: make(chan struct{}, 1)}
}

// handler asks for a pass over the Services on every Service change.
func (l *loadBalancers) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { l.wake() },
		UpdateFunc: func(any, any) { l.wake() },
		DeleteFunc: func(any) { l.wake() },
	}
}

func (l *loadBalancers) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// lbRetry is how soon a pass that failed to write a status is repeated.
const lbRetry = time.Second

// run makes a pass after changes until ctx ends; a pass that failed is repeated.
func (l *loadBalancers) run(ctx context.Context) {
	l.wake()
	for {
		var retry <-chan time.Time
		if len(l.pending) > 0 {
			retry = time.After(lbRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		case <-retry:
		}
		l.pass(ctx)
	}
}

// pass gives every LoadBalancer Service of no class an address and takes it back from
// Services that are no longer LoadBalancers.
func (l *loadBalancers) pass(ctx context.Context) {
	l.pending = map[string]bool{}
	cached, err := l.lister.List(labels.Everything())
	if err != nil {
		l.log.Error("listing services for load balancers", "err", err)
		return
	}
	if !l.sweep(ctx, cached, false) {
		return
	}
	// Addresses to hand out: choose them from the API server's own view, not the cache's.
	list, err := l.client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		l.log.Warn("listing services for load balancers", "err", err)
		l.pending["list"] = true
		return
	}
	live := make([]*corev1.Service, len(list.Items))
	for i := range list.Items {
		live[i] = &list.Items[i]
	}
	l.sweep(ctx, live, true)
}

// sweep takes the addresses back from svcs that are no longer LoadBalancers and reports
// whether any of ours lacks one; with assign, it also gives each of those an address.
func (l *loadBalancers) sweep(ctx context.Context, svcs []*corev1.Service, assign bool) (wanted bool) {
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	used := map[netip.Addr]string{}
	var want []*corev1.Service
	for _, s := range svcs {
		key := s.Namespace + "/" + s.Name
		served := kptr.Deref(s.Spec.LoadBalancerClass, "") == l.class
		ours := s.Spec.Type == corev1.ServiceTypeLoadBalancer && served
		ip, has := l.assigned(s)
		switch {
		case ours && has && used[ip] == "":
			used[ip] = key
		case ours:
			want = append(want, s)
		case has && served && assign:
			// Still holds it: the release in the cached sweep failed, or came after this list.
			used[ip] = key
		case has && served:
			// No longer a LoadBalancer: the address goes back to the pool.
			l.write(ctx, s, nil)
		}
	}
	if !assign {
		return len(want) > 0
	}
	for _, s := range want {
		ip, ok := l.choose(s, used)
		if !ok {
			l.log.Error("no load-balancer address left", "service", s.Namespace+"/"+s.Name, "pool", l.pool)
			continue
		}
		// Claimed even when the write failed: the failure may be a conflict with a
		// version of s that already holds ip.
		used[ip] = s.Namespace + "/" + s.Name
		l.write(ctx, s, []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: ptr(corev1.LoadBalancerIPModeVIP)}})
	}
	return len(want) > 0
}

// assigned is the pool address in s's status.
func (l *loadBalancers) assigned(s *corev1.Service) (netip.Addr, bool) {
	for _, in := range s.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil && l.pool.Contains(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// choose picks s's address: its spec.loadBalancerIP when in the pool and free, else the
// lowest free address of the pool (not its first, network, address).
func (l *loadBalancers) choose(s *corev1.Service, used map[netip.Addr]string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(s.Spec.LoadBalancerIP); err == nil && l.pool.Contains(ip) && used[ip] == "" {
		return ip, true
	}
	for ip := l.pool.Addr().Next(); l.pool.Contains(ip); ip = ip.Next() {
		if used[ip] == "" {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// write sets s's load-balancer ingress; a failure is logged and the pass repeated.
func (l *loadBalancers) write(ctx context.Context, s *corev1.Service, ingress []corev1.LoadBalancerIngress) {
	s = s.DeepCopy()
	s.Status.LoadBalancer.Ingress = ingress
	_, err := l.client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		l.log.Warn("writing a load balancer's address", "service", s.Namespace+"/"+s.Name, "err", err)
		l.pending[s.Namespace+"/"+s.Name] = true
		return
	}
	l.log.Info("load balancer", "service", s.Namespace+"/"+s.Name, "ingress", fmt.Sprint(ingress))
}

func ptr[T any](v T) *T { return &v }
