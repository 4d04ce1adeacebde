package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/test/netns"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Config is what Run needs to play a node.
type Config struct {
	// Client talks to the API server; it needs rights over nodes, leases, pods (and their
	// status), services, config maps and secrets (get, list, watch) and service-account tokens.
	Client kubernetes.Interface
	// NodeName is the Node the agent registers; it runs the pods bound to it.
	NodeName string
	// Network gives every pod its network namespace (Network.AddPod) on the node's bridge;
	// probes are dialled from Network.Node.
	Network *netns.Network
	// Images maps a container's image (or, when the container has a command, its
	// command[0]) to the path of a local binary to run.
	Images func(image string) (string, error)
	// HostsFile, when set, is bind-mounted read-only at /etc/hosts in every container.
	HostsFile string
	// ClusterDNS, when valid, is the cluster DNS server: pods with dnsPolicy ClusterFirst
	// (the default) get a resolv.conf naming it, with the kubelet's search path for
	// ClusterDomain and ndots:5, bind-mounted read-only at /etc/resolv.conf. When it is not
	// valid, such pods keep the node's /etc/resolv.conf, as with dnsPolicy Default.
	ClusterDNS netip.Addr
	// ClusterDomain is the cluster's DNS domain; empty means DefaultClusterDomain.
	ClusterDomain string
	// RunDir holds volumes and logs: RunDir/pods/<namespace>_<name>/{volumes,logs}.
	RunDir string
	// Logger receives the agent's own log; nil means slog.Default().
	Logger *slog.Logger
	// CNI, when set, makes the agent set up pods' networks with the node's CNI
	// configuration (see CNI) instead of Network.AddPod.
	CNI *CNI
}

// NodeIP is the node's InternalIP and every pod's hostIP on a Network with netns's default
// ranges: the bridge's address. On other Networks it is their bridge's (GatewayV4).
var NodeIP = netns.GatewayV4

// Capacity is the node's capacity and allocatable.
var Capacity = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("16"),
	corev1.ResourceMemory: resource.MustParse("64Gi"),
	corev1.ResourcePods:   resource.MustParse("250"),
}

// LogPath is the file a container's stdout and stderr go to (appended to across restarts).
func LogPath(runDir, namespace, pod, container string) string {
	return filepath.Join(podDir(runDir, namespace, pod), "logs", container+".log")
}

func podDir(runDir, namespace, pod string) string {
	return filepath.Join(runDir, "pods", namespace+"_"+pod)
}

// podSeq numbers pod network namespaces ("k1", "k2", ...) across every agent of the
// process, so several agents (nodes) can share one Network.
var podSeq atomic.Int64

// agent is one running node.
type agent struct {
	cfg      Config
	log      *slog.Logger
	services corelisters.ServiceLister
	cni      *cniRuntime // nil: test/netns's own veth

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	ran     map[types.UID]bool // pods whose worker has ended: never run again
	closing bool
	wg      sync.WaitGroup

	watchMu sync.Mutex
	watches map[watchKey]*objWatch // Secrets and ConfigMaps that pods' volumes read
}

// Run registers Node cfg.NodeName (Ready, InternalIP NodeIP, pod CIDRs of the Network,
// Capacity), keeps its Lease and Ready heartbeat fresh, and runs the pods bound to it
// until ctx ends; then it kills every pod process, removes the pods' network namespaces
// and returns nil. Pods keep their API objects; the Node stays registered. It fails at
// once on a bad Config or when the Node cannot be registered.
func Run(ctx context.Context, cfg Config) error {
	switch {
	case cfg.Client == nil:
		return errors.New("node: Config.Client is required")
	case cfg.NodeName == "":
		return errors.New("node: Config.NodeName is required")
	case cfg.Network == nil:
		return errors.New("node: Config.Network is required")
	case cfg.Images == nil:
		return errors.New("node: Config.Images is required")
	case cfg.RunDir == "":
		return errors.New("node: Config.RunDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return fmt.Errorf("node: making the run directory: %w", err)
	}
	a := &agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), workers: map[types.UID]*podWorker{}, ran: map[types.UID]bool{}, watches: map[watchKey]*objWatch{}}
	if cfg.CNI != nil {
		a.cni = newCNIRuntime(cfg.CNI, cfg.Network.Node)
	}
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	svcFactory := informers.NewSharedInformerFactory(cfg.Client, 0)
	a.services = svcFactory.Core().V1().Services().Lister()
	svcFactory.Start(ctx.Done())
	defer svcFactory.Shutdown()
	svcFactory.WaitForCacheSync(ctx.Done())

	podFactory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	}))
	podInformer := podFactory.Core().V1().Pods().Informer()
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.podChanged(ctx, obj) },
		UpdateFunc: func(_, obj any) { a.podChanged(ctx, obj) },
		DeleteFunc: a.podDeleted,
	}); err != nil {
		return fmt.Errorf("node: watching pods: %w", err)
	}
	podFactory.Start(ctx.Done())
	defer podFactory.Shutdown()

	go a.keepAlive(ctx)
	<-ctx.Done()

	a.mu.Lock()
	a.closing = true
	for _, w := range a.workers {
		w.stop(0)
	}
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}

// podChanged hands a pod's new state to its worker, starting one for a pod not seen yet.
func (a *agent) podChanged(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return
	}
	w := a.workers[pod.UID]
	if w == nil {
		if a.ran[pod.UID] || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			// Finished before this agent started (or by an earlier worker): nothing to run,
			// but a deletion still needs confirming.
			if pod.DeletionTimestamp != nil {
				go a.confirmDeletion(ctx, pod)
			}
			return
		}
		w = newPodWorker(a, pod)
		a.workers[pod.UID] = w
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			w.run(ctx)
			a.mu.Lock()
			delete(a.workers, pod.UID)
			a.ran[pod.UID] = true
			a.mu.Unlock()
		}()
	}
	w.update(pod)
}

// podDeleted stops at once the worker of a pod whose object is gone.
func (a *agent) podDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.ran, pod.UID)
	if w := a.workers[pod.UID]; w != nil {
		w.gone.Store(true)
		w.stop(0)
		a.ran[pod.UID] = true
	}
}

// confirmDeletion deletes a pod object with grace period 0, as the kubelet does once the
// pod's containers are gone.
func (a *agent) confirmDeletion(ctx context.Context, pod *corev1.Pod) {
	zero := int64(0)
	uid := pod.UID
	err := a.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		a.log.Warn("confirming a pod deletion", "pod", pod.Namespace+"/"+pod.Name, "error", err)
	}
}

// allocatable is what resourceFieldRef limits default to.
func (a *agent) allocatable() corev1.ResourceList { return Capacity }

// podCIDRs are the Network's pod ranges.
func (a *agent) podCIDRs() []string {
	r := a.cfg.Network.Ranges()
	return []string{r.V4.String(), r.V6.String()}
}

// nodeIP is the node's InternalIP and every pod's hostIP: the Network's bridge address.
func (a *agent) nodeIP() netip.Addr { return a.cfg.Network.Ranges().GatewayV4() }

// registerNode creates (or takes over) the Node and sets it Ready.
func (a *agent) registerNode(ctx context.Context) error {
	nodes := a.cfg.Client.CoreV1().Nodes()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: map[string]string{
			"kubernetes.io/hostname": a.cfg.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		}},
		Spec: corev1.NodeSpec{PodCIDR: a.podCIDRs()[0], PodCIDRs: a.podCIDRs()},
	}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("node: registering node %s: %w", a.cfg.NodeName, err)
	}
	if err := a.updateNodeStatus(ctx, created); err != nil {
		return err
	}
	return a.renewLease(ctx)
}

// updateNodeStatus writes a Ready status with a fresh heartbeat.
func (a *agent) updateNodeStatus(ctx context.Context, node *corev1.Node) error {
	now := metav1.Now()
	ready := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "l5d test node agent is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready.LastTransitionTime = c.LastTransitionTime
		}
	}
	node = node.DeepCopy()
	node.Status = corev1.NodeStatus{
		Capacity:    Capacity,
		Allocatable: Capacity,
		Phase:       corev1.NodeRunning,
		Conditions:  []corev1.NodeCondition{ready},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.nodeIP().String()},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "v1.34.4",
			ContainerRuntimeVersion: "l5d-node://test",
		},
	}
	if _, err := a.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node: updating the status of node %s: %w", a.cfg.NodeName, err)
	}
	return nil
}

// leaseSeconds is the node lease's duration; it is renewed every quarter of it.
const leaseSeconds = 40

// renewLease creates or renews the node's Lease in kube-node-lease.
func (a *agent) renewLease(ctx context.Context) error {
	leases := a.cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	holder, dur := a.cfg.NodeName, int32(leaseSeconds)
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("node: reading node %s: %w", a.cfg.NodeName, err)
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("node: creating the node lease: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: reading the node lease: %w", err)
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &holder, &dur, &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node: renewing the node lease: %w", err)
	}
	return nil
}

// keepAlive renews the lease every 10s and posts the Ready heartbeat every 30s.
func (a *agent) keepAlive(ctx context.Context) {
	tick := time.NewTicker(leaseSeconds / 4 * time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("renewing the node lease", "error", err)
		}
		if n%3 == 0 {
			node, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
			if err == nil {
				err = a.updateNodeStatus(ctx, node)
			}
			if err != nil && ctx.Err() == nil {
				a.log.Warn("posting the node status", "error", err)
			}
		}
	}
}
