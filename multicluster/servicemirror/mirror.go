// Package servicemirror is the service mirror controller of one Link: it watches the
// target cluster's Services through the Link's credentials and keeps, in the local
// cluster, a mirror "<svc>-<cluster>" of each one the Link's selectors export.
//
//   - A Service the Link's Selector matches (mirror.linkerd.io/exported=true) is
//     mirrored through the gateway: a selector-less Service with the remote ports, and
//     Endpoints of the same name holding the gateway's address with every port mapped to
//     the gateway port, annotated with the gateway's identity. The addresses are ready
//     while the gateway answers its probes and not ready while it is down.
//   - A Service the RemoteDiscoverySelector matches (=remote-discovery) is mirrored
//     pod to pod: a selector-less Service labelled mirror.linkerd.io/remote-discovery and
//     mirror.linkerd.io/remote-service, without Endpoints; the destination controller
//     resolves it to the remote pods through the same Link.
//
// Mirrors are created, updated and deleted in step with the remote Services, deleted
// when a Service is no longer exported and by Cleanup when the Link goes. The controller
// only ever changes or deletes objects labelled mirror.linkerd.io/mirrored-service=true
// and mirror.linkerd.io/cluster-name=<cluster>; a local object of the same name without
// them is left alone and reported. While the remote API server is unreachable the
// mirrors stay as they are; when it comes back the informers list again and the
// differences are reconciled.
package servicemirror

//lint:file-ignore SA1019 as Linkerd's service mirror, gateway mirrors are v1 Endpoints (their selector-less Services' EndpointSlices are derived by the API server's endpointslice-mirroring controller), which tools and users of Linkerd look for

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// Mode is how a remote Service is mirrored.
type Mode string

// Modes.
const (
	ModeNone            Mode = ""
	ModeGateway         Mode = "gateway"
	ModeRemoteDiscovery Mode = "remote-discovery"
)

// Metrics are the controller's metrics.
type Metrics struct {
	// Mirrored counts the mirrors the controller keeps, by target cluster and mode.
	Mirrored *prometheus.GaugeVec
	// Errors counts failed reconciliations (each is retried with backoff).
	Errors *prometheus.CounterVec
}

// NewMetrics registers the controller's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Mirrored: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "service_mirror_mirrored_services",
			Help: "Services of the linked cluster currently mirrored in this one, by mode (gateway or remote-discovery).",
		}, []string{"target_cluster_name", "mode"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "service_mirror_reconcile_errors_total",
			Help: "Reconciliations of a mirrored service that failed and were retried.",
		}, []string{"target_cluster_name"}),
	}
	reg.MustRegister(m.Mirrored, m.Errors)
	return m
}

// Controller mirrors one linked cluster's exported Services. Fill the fields, then Run.
type Controller struct {
	// Link is the parsed Link.
	Link *mc.Config
	// Local is the cluster the mirrors are written to; Remote the linked cluster.
	Local, Remote kubernetes.Interface
	Log           *slog.Logger
	Metrics       *Metrics
	// SyncTimeout bounds the wait for the local caches at start (a minute when zero).
	// The remote caches are waited for without bound: while the remote API server is
	// unreachable nothing is mirrored or deleted.
	SyncTimeout time.Duration

	once         sync.Once
	status       statusSet
	gatewayAlive atomic.Bool
	aliveChanged chan struct{} // cap 1: a gateway state change not yet applied
	queue        workqueue.TypedRateLimitingInterface[string]
	remoteSvcs   corelisters.ServiceLister
	localSvcs    corelisters.ServiceLister
	remoteSynced atomic.Bool
}

func (c *Controller) init() {
	c.once.Do(func() {
		c.aliveChanged = make(chan struct{}, 1)
		c.status.init()
		c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "service-mirror-" + c.Link.Name})
	})
}

// SetGatewayAlive records the gateway's probe state; gateway mirrors' Endpoint
// addresses are ready only while it is alive. It may be called before and during Run.
func (c *Controller) SetGatewayAlive(alive bool) {
	c.init()
	if c.gatewayAlive.Swap(alive) == alive {
		return
	}
	select {
	case c.aliveChanged <- struct{}{}:
	default:
	}
}

// Synced reports whether the remote Services have been listed at least once.
func (c *Controller) Synced() bool { return c.remoteSynced.Load() }

// Run mirrors until ctx ends. It returns an error only when it cannot start (the local
// caches do not sync).
func (c *Controller) Run(ctx context.Context) error {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.Log = c.Log.With("link", c.Link.Name, "cluster", c.Link.ClusterName)
	if c.SyncTimeout == 0 {
		c.SyncTimeout = time.Minute
	}
	c.init()
	defer c.queue.ShutDown()

	// Local objects this controller created (and only those) are watched, so that
	// orphans and hand edits are put back in step.
	ours := labels.SelectorFromSet(labels.Set{mc.LabelMirroredService: "true", mc.LabelClusterName: c.Link.ClusterName}).String()
	lf := k8s.NewInformerFactory(c.Local, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = ours }))
	lsvc := lf.Core().V1().Services()
	leps := lf.Core().V1().Endpoints()
	c.localSvcs = lsvc.Lister()
	localHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueLocal,
		UpdateFunc: func(_, o any) { c.enqueueLocal(o) },
		DeleteFunc: c.enqueueLocal,
	}
	if _, err := lsvc.Informer().AddEventHandler(localHandler); err != nil {
		return fmt.Errorf("watching local mirrors: %w", err)
	}
	if _, err := leps.Informer().AddEventHandler(localHandler); err != nil {
		return fmt.Errorf("watching local mirror endpoints: %w", err)
	}
	if err := k8s.StartAndSync(ctx, lf, c.SyncTimeout); err != nil {
		return fmt.Errorf("local cluster: %w", err)
	}

	rf := k8s.NewInformerFactory(c.Remote, 0)
	rsvc := rf.Core().V1().Services()
	c.remoteSvcs = rsvc.Lister()
	if _, err := rsvc.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueRemote,
		UpdateFunc: func(_, o any) { c.enqueueRemote(o) },
		DeleteFunc: c.enqueueRemote,
	}); err != nil {
		return fmt.Errorf("watching remote services: %w", err)
	}
	rf.Start(ctx.Done())
	c.Log.Info("waiting for the linked cluster's services")
	if !cache.WaitForCacheSync(ctx.Done(), rsvc.Informer().HasSynced) {
		return nil // ctx ended
	}
	c.remoteSynced.Store(true)
	c.status.signal() // the first write replaces what an earlier run left
	c.Log.Info("linked cluster's services listed; mirroring")
	// Mirrors left by an earlier run whose remote Service is gone get a look too.
	for _, s := range c.listLocal() {
		c.enqueueLocal(s)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				c.queue.ShutDown()
				return
			case <-c.aliveChanged:
				c.enqueueAllGatewayMirrors()
			}
		}
	}()
	for c.processNext(ctx) {
	}
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.reconcile(ctx, key); err != nil {
		if ctx.Err() != nil {
			return false
		}
		c.Log.Warn("mirroring failed; will retry", "service", key, "err", err)
		if c.Metrics != nil {
			c.Metrics.Errors.WithLabelValues(c.Link.ClusterName).Inc()
		}
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	c.updateCounts()
	return true
}

// enqueueRemote queues the remote Service's key ("ns/name" in the remote cluster).
func (c *Controller) enqueueRemote(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

// enqueueLocal queues the remote key a local mirror object stands for.
func (c *Controller) enqueueLocal(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	if name, ok := c.remoteName(m); ok {
		c.queue.Add(m.GetNamespace() + "/" + name)
	}
}

// remoteName is the name of the remote Service a local mirror object mirrors.
func (c *Controller) remoteName(m metav1.Object) (string, bool) {
	if n := m.GetLabels()[mc.LabelRemoteService]; n != "" {
		return n, true
	}
	if fq := m.GetAnnotations()[mc.AnnRemoteSvcFQName]; fq != "" {
		return strings.SplitN(fq, ".", 2)[0], true
	}
	suffix := "-" + c.Link.ClusterName
	if n, ok := strings.CutSuffix(m.GetName(), suffix); ok && n != "" {
		return n, true
	}
	return "", false
}

func (c *Controller) enqueueAllGatewayMirrors() {
	for _, s := range c.listLocal() {
		if s.Labels[mc.LabelRemoteDiscovery] == "" {
			c.enqueueLocal(s)
		}
	}
}

func (c *Controller) listLocal() []*corev1.Service {
	if c.localSvcs == nil {
		return nil
	}
	svcs, _ := c.localSvcs.List(labels.Everything())
	return svcs
}

func (c *Controller) updateCounts() {
	if c.Metrics == nil {
		return
	}
	var gw, rd int
	for _, s := range c.listLocal() {
		if s.Labels[mc.LabelRemoteDiscovery] != "" {
			rd++
		} else {
			gw++
		}
	}
	c.Metrics.Mirrored.WithLabelValues(c.Link.ClusterName, string(ModeGateway)).Set(float64(gw))
	c.Metrics.Mirrored.WithLabelValues(c.Link.ClusterName, string(ModeRemoteDiscovery)).Set(float64(rd))
}

// ModeOf is how the Link mirrors a remote Service with these labels: pod to pod when
// the RemoteDiscoverySelector matches, through the gateway when the Selector matches
// and the Link has a gateway, not at all otherwise.
func ModeOf(link *mc.Config, svcLabels map[string]string) Mode {
	set := labels.Set(svcLabels)
	switch {
	case link.RemoteDiscoverySelector.Matches(set):
		return ModeRemoteDiscovery
	case link.Gateway && link.Selector.Matches(set):
		return ModeGateway
	}
	return ModeNone
}

func (c *Controller) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	mode, err := c.reconcileMirror(ctx, ns, name)
	c.setStatus(ns, name, mode, err)
	return err
}

// reconcileMirror puts the mirror of remote Service ns/name in step and says how it is
// mirrored (ModeNone: not, or no longer).
func (c *Controller) reconcileMirror(ctx context.Context, ns, name string) (Mode, error) {
	mirror := mc.MirrorName(name, c.Link.ClusterName)
	remote, err := c.remoteSvcs.Services(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return ModeNone, err
	}
	mode := ModeNone
	if remote != nil {
		mode = ModeOf(c.Link, remote.Labels)
		// ExternalName Services have no endpoints to mirror.
		if remote.Spec.Type == corev1.ServiceTypeExternalName {
			mode = ModeNone
		}
	}
	if mode == ModeNone {
		return mode, c.deleteMirror(ctx, ns, mirror)
	}
	if err := c.applyService(ctx, remote, mirror, mode); err != nil {
		return mode, err
	}
	if mode == ModeGateway {
		return mode, c.applyEndpoints(ctx, remote, mirror)
	}
	return mode, c.deleteEndpoints(ctx, ns, mirror)
}

// ours reports whether a local object was made by this controller for this Link.
func (c *Controller) ours(m metav1.Object) bool {
	l := m.GetLabels()
	return l[mc.LabelMirroredService] == "true" && l[mc.LabelClusterName] == c.Link.ClusterName
}

func (c *Controller) fqName(remote *corev1.Service) string {
	return remote.Name + "." + remote.Namespace + ".svc." + c.Link.ClusterDomain
}

// filtered copies m without the keys the Link excludes (exact keys or "prefix/*"),
// and without drop.
func filtered(m map[string]string, excluded []string, drop ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if slices.Contains(drop, k) || excludedKey(k, excluded) {
			continue
		}
		out[k] = v
	}
	return out
}

func excludedKey(k string, excluded []string) bool {
	for _, e := range excluded {
		if e == k {
			return true
		}
		if p, ok := strings.CutSuffix(e, "*"); ok && strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// desiredService is the local mirror of remote in mode.
func (c *Controller) desiredService(remote *corev1.Service, name string, mode Mode) *corev1.Service {
	lbls := filtered(remote.Labels, c.Link.ExcludedLabels, mc.LabelExported)
	lbls[mc.LabelMirroredService] = "true"
	lbls[mc.LabelClusterName] = c.Link.ClusterName
	if mode == ModeRemoteDiscovery {
		lbls[mc.LabelRemoteDiscovery] = c.Link.ClusterName
		lbls[mc.LabelRemoteService] = remote.Name
	}
	anns := filtered(remote.Annotations, c.Link.ExcludedAnnotations, "kubectl.kubernetes.io/last-applied-configuration")
	anns[mc.AnnRemoteResourceVersion] = remote.ResourceVersion
	anns[mc.AnnRemoteSvcFQName] = c.fqName(remote)
	if mode == ModeGateway {
		// Also on the Service: EndpointSlices mirrored from the Endpoints need not
		// carry the Endpoints' annotations.
		anns[mc.AnnRemoteGatewayIdentity] = c.Link.GatewayIdentity
	}
	var ports []corev1.ServicePort
	for _, p := range remote.Spec.Ports {
		ports = append(ports, corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port, AppProtocol: p.AppProtocol})
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: remote.Namespace, Labels: lbls, Annotations: anns},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports},
	}
}

func (c *Controller) applyService(ctx context.Context, remote *corev1.Service, name string, mode Mode) error {
	want := c.desiredService(remote, name, mode)
	svcs := c.Local.CoreV1().Services(remote.Namespace)
	have, err := svcs.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := svcs.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("creating mirror %s/%s: %w: %w", remote.Namespace, name, errMissingNamespace, err)
			}
			return fmt.Errorf("creating mirror %s/%s: %w", remote.Namespace, name, err)
		}
		c.Log.Info("mirrored service created", "service", remote.Namespace+"/"+name, "mode", mode)
		return nil
	case err != nil:
		return fmt.Errorf("reading mirror %s/%s: %w", remote.Namespace, name, err)
	}
	if !c.ours(have) {
		c.Log.Warn("a local service has the mirror's name but was not made by this link; leaving it alone",
			"service", remote.Namespace+"/"+name)
		return nil
	}
	if maps.Equal(have.Labels, want.Labels) && maps.Equal(have.Annotations, want.Annotations) &&
		portsEqual(have.Spec.Ports, want.Spec.Ports) {
		return nil
	}
	upd := have.DeepCopy()
	upd.Labels, upd.Annotations, upd.Spec.Ports = want.Labels, want.Annotations, want.Spec.Ports
	if _, err := svcs.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating mirror %s/%s: %w", remote.Namespace, name, err)
	}
	c.Log.Info("mirrored service updated", "service", remote.Namespace+"/"+name, "mode", mode)
	return nil
}

func portsEqual(a, b []corev1.ServicePort) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.ServicePort) bool {
		return x.Name == y.Name && x.Port == y.Port && x.Protocol == y.Protocol &&
			((x.AppProtocol == nil) == (y.AppProtocol == nil)) && (x.AppProtocol == nil || *x.AppProtocol == *y.AppProtocol)
	})
}

// gatewayAddresses resolves the Link's gateway address (an IP or a DNS name).
func (c *Controller) gatewayAddresses(ctx context.Context) ([]corev1.EndpointAddress, error) {
	if ip := net.ParseIP(c.Link.GatewayAddress); ip != nil {
		return []corev1.EndpointAddress{{IP: ip.String()}}, nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, c.Link.GatewayAddress)
	if err != nil {
		return nil, fmt.Errorf("resolving the gateway address %q: %w", c.Link.GatewayAddress, err)
	}
	var out []corev1.EndpointAddress
	for _, ip := range ips {
		out = append(out, corev1.EndpointAddress{IP: ip.IP.String()})
	}
	slices.SortFunc(out, func(a, b corev1.EndpointAddress) int { return strings.Compare(a.IP, b.IP) })
	return out, nil
}

// desiredEndpoints are a gateway mirror's Endpoints: the gateway's addresses (ready
// while it is alive), each remote port mapped to the gateway port.
func (c *Controller) desiredEndpoints(ctx context.Context, remote *corev1.Service, name string) (*corev1.Endpoints, error) {
	addrs, err := c.gatewayAddresses(ctx)
	if err != nil {
		return nil, err
	}
	var ports []corev1.EndpointPort
	for _, p := range remote.Spec.Ports {
		ports = append(ports, corev1.EndpointPort{Name: p.Name, Port: int32(c.Link.GatewayPort), Protocol: p.Protocol})
	}
	subset := corev1.EndpointSubset{Ports: ports}
	if c.gatewayAlive.Load() {
		subset.Addresses = addrs
	} else {
		subset.NotReadyAddresses = addrs
	}
	return &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: remote.Namespace,
			Labels: map[string]string{mc.LabelMirroredService: "true", mc.LabelClusterName: c.Link.ClusterName},
			Annotations: map[string]string{
				mc.AnnRemoteGatewayIdentity: c.Link.GatewayIdentity,
				mc.AnnRemoteSvcFQName:       c.fqName(remote),
			},
		},
		Subsets: []corev1.EndpointSubset{subset},
	}, nil
}

func (c *Controller) applyEndpoints(ctx context.Context, remote *corev1.Service, name string) error {
	want, err := c.desiredEndpoints(ctx, remote, name)
	if err != nil {
		return err
	}
	eps := c.Local.CoreV1().Endpoints(remote.Namespace)
	have, err := eps.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := eps.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating mirror endpoints %s/%s: %w", remote.Namespace, name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading mirror endpoints %s/%s: %w", remote.Namespace, name, err)
	}
	if !c.ours(have) {
		c.Log.Warn("local endpoints have the mirror's name but were not made by this link; leaving them alone",
			"endpoints", remote.Namespace+"/"+name)
		return nil
	}
	if maps.Equal(have.Labels, want.Labels) && maps.Equal(have.Annotations, want.Annotations) &&
		subsetsEqual(have.Subsets, want.Subsets) {
		return nil
	}
	upd := have.DeepCopy()
	upd.Labels, upd.Annotations, upd.Subsets = want.Labels, want.Annotations, want.Subsets
	if _, err := eps.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating mirror endpoints %s/%s: %w", remote.Namespace, name, err)
	}
	return nil
}

func subsetsEqual(a, b []corev1.EndpointSubset) bool {
	ips := func(as []corev1.EndpointAddress) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.IP)
		}
		return out
	}
	return slices.EqualFunc(a, b, func(x, y corev1.EndpointSubset) bool {
		return slices.Equal(ips(x.Addresses), ips(y.Addresses)) &&
			slices.Equal(ips(x.NotReadyAddresses), ips(y.NotReadyAddresses)) &&
			slices.EqualFunc(x.Ports, y.Ports, func(p, q corev1.EndpointPort) bool {
				return p.Name == q.Name && p.Port == q.Port && p.Protocol == q.Protocol
			})
	})
}

func (c *Controller) deleteMirror(ctx context.Context, ns, name string) error {
	if err := c.deleteEndpoints(ctx, ns, name); err != nil {
		return err
	}
	svc, err := c.Local.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading mirror %s/%s: %w", ns, name, err)
	}
	if !c.ours(svc) {
		return nil
	}
	if err := c.Local.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &svc.UID},
	}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting mirror %s/%s: %w", ns, name, err)
	}
	c.Log.Info("mirrored service deleted", "service", ns+"/"+name)
	return nil
}

func (c *Controller) deleteEndpoints(ctx context.Context, ns, name string) error {
	ep, err := c.Local.CoreV1().Endpoints(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading mirror endpoints %s/%s: %w", ns, name, err)
	}
	if !c.ours(ep) {
		return nil
	}
	if err := c.Local.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &ep.UID},
	}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting mirror endpoints %s/%s: %w", ns, name, err)
	}
	return nil
}

// Cleanup deletes every local Service and Endpoints mirrored from cluster (the objects
// labelled mirror.linkerd.io/mirrored-service=true and mirror.linkerd.io/cluster-name=
// cluster), as when its Link is deleted. It returns the names it deleted.
func Cleanup(ctx context.Context, local kubernetes.Interface, cluster string) ([]string, error) {
	sel := labels.SelectorFromSet(labels.Set{mc.LabelMirroredService: "true", mc.LabelClusterName: cluster}).String()
	var deleted []string
	var errs []error
	eps, err := local.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing mirror endpoints of cluster %s: %w", cluster, err)
	}
	for _, e := range eps.Items {
		if err := local.CoreV1().Endpoints(e.Namespace).Delete(ctx, e.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting endpoints %s/%s: %w", e.Namespace, e.Name, err))
		}
	}
	svcs, err := local.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing mirrors of cluster %s: %w", cluster, err)
	}
	for _, s := range svcs.Items {
		if err := local.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting service %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		deleted = append(deleted, s.Namespace+"/"+s.Name)
	}
	return deleted, errors.Join(errs...)
}
