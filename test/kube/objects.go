package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// requestTimeout bounds each API call a helper makes.
const requestTimeout = 30 * time.Second

func requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), requestTimeout)
}

// CreateServiceAccount creates service account ns/name and returns it. It goes away with
// the namespace.
func (c *Cluster) CreateServiceAccount(t testing.TB, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	ctx, cancel := requestContext()
	defer cancel()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	created, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kube: creating service account %s/%s: %v", ns, name, err)
	}
	return created
}

// Node describes a node made by CreateNode. There is no kubelet behind it: the node is
// only an API object that is Ready, schedulable and roomy.
type Node struct {
	// Name of the node; empty means one derived from the test name.
	Name string
	// InternalIP is the node's address and the hostIP of its pods; empty means 127.0.0.1.
	InternalIP string
	// Labels are added to kubernetes.io/hostname and kubernetes.io/os=linux.
	Labels map[string]string
	// PodCIDRs, when set, become spec.podCIDRs (and the first spec.podCIDR).
	PodCIDRs []string
}

// CreateNode creates a Ready node with room for many pods and deletes it when the test
// ends. Nodes are cluster-scoped: parallel tests should leave Name empty or pick distinct names.
func (c *Cluster) CreateNode(t testing.TB, n Node) *corev1.Node {
	t.Helper()
	if n.Name == "" {
		n.Name = uniqueName("node-"+t.Name(), 40)
	}
	if n.InternalIP == "" {
		n.InternalIP = "127.0.0.1"
	}
	if net.ParseIP(n.InternalIP) == nil {
		t.Fatalf("kube: CreateNode %s: InternalIP %q is not an IP address", n.Name, n.InternalIP)
	}
	labels := map[string]string{"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
	maps.Copy(labels, n.Labels)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels},
	}
	if len(n.PodCIDRs) > 0 {
		node.Spec.PodCIDR = n.PodCIDRs[0]
		node.Spec.PodCIDRs = n.PodCIDRs
	}
	ctx, cancel := requestContext()
	defer cancel()
	created, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kube: creating node %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := requestContext()
		defer cancel()
		if err := ignoreNotFound(c.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})); err != nil {
			t.Errorf("kube: deleting node %s: %v", n.Name, err)
		}
	})
	now := metav1.Now()
	room := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	created.Status = corev1.NodeStatus{
		Capacity:    room,
		Allocatable: room,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "test node without a kubelet", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.InternalIP},
			{Type: corev1.NodeHostName, Address: n.Name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: KubeVersion,
			ContainerRuntimeVersion: "containerd://test",
		},
	}
	updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("kube: setting status of node %s: %v", n.Name, err)
	}
	return updated
}

// CreatePod creates pod (its Namespace must be set) and returns the object the API server
// stored, after admission webhooks. A pod without containers gets one named "app" with a
// placeholder image, since no kubelet will ever pull it. It goes away with the namespace.
func (c *Cluster) CreatePod(t testing.TB, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if pod.Namespace == "" {
		t.Fatalf("kube: CreatePod %s: the pod has no namespace", pod.Name)
	}
	pod = pod.DeepCopy()
	if len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "registry.invalid/l5d-test/app:latest"}}
	}
	ctx, cancel := requestContext()
	defer cancel()
	created, err := c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kube: creating pod %s/%s%s: %v", pod.Namespace, pod.Name, pod.GenerateName, err)
	}
	return created
}

// PodStatus is what SetPodStatus reports for a pod, standing in for a kubelet.
type PodStatus struct {
	// Node binds the pod to this node first when it is not bound yet.
	Node string
	// IPs are the pod's addresses; the first becomes status.podIP.
	IPs []string
	// Ready sets the Ready and ContainersReady conditions and every container's ready flag.
	Ready bool
	// Phase defaults to Running.
	Phase corev1.PodPhase
}

// SetPodStatus makes pod ns/name look as if a kubelet ran it: bound to a node, the phase,
// IPs, hostIP (the node's InternalIP), conditions and container statuses set. It returns
// the updated pod.
func (c *Cluster) SetPodStatus(t testing.TB, ns, name string, st PodStatus) *corev1.Pod {
	t.Helper()
	for _, ip := range st.IPs {
		if net.ParseIP(ip) == nil {
			t.Fatalf("kube: SetPodStatus %s/%s: %q is not an IP address", ns, name, ip)
		}
	}
	if st.Phase == "" {
		st.Phase = corev1.PodRunning
	}
	ctx, cancel := requestContext()
	defer cancel()
	pods := c.client.CoreV1().Pods(ns)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kube: SetPodStatus: %v", err)
	}
	if pod.Spec.NodeName == "" && st.Node != "" {
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: st.Node},
		}
		if err := pods.Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatalf("kube: binding pod %s/%s to node %s: %v", ns, name, st.Node, err)
		}
	}
	var updated *corev1.Pod
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var hostIP string
		if pod.Spec.NodeName != "" {
			if node, err := c.client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{}); err == nil {
				for _, a := range node.Status.Addresses {
					if a.Type == corev1.NodeInternalIP {
						hostIP = a.Address
						break
					}
				}
			}
		}
		fillPodStatus(pod, st, hostIP)
		updated, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("kube: setting status of pod %s/%s: %v", ns, name, err)
	}
	return updated
}

func fillPodStatus(pod *corev1.Pod, st PodStatus, hostIP string) {
	now := metav1.Now()
	cond := func(ok bool) corev1.ConditionStatus {
		if ok {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	running := st.Phase == corev1.PodRunning
	s := &pod.Status
	s.Phase = st.Phase
	s.PodIP, s.PodIPs = "", nil
	for _, ip := range st.IPs {
		s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(st.IPs) > 0 {
		s.PodIP = st.IPs[0]
	}
	s.HostIP, s.HostIPs = hostIP, nil
	if hostIP != "" {
		s.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
	if s.StartTime == nil {
		s.StartTime = &now
	}
	s.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: cond(pod.Spec.NodeName != ""), LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: cond(st.Ready), LastTransitionTime: now},
		{Type: corev1.PodReady, Status: cond(st.Ready), LastTransitionTime: now},
	}
	containerID := func(name string) string {
		sum := sha256.Sum256([]byte(string(pod.UID) + "/" + name))
		return "containerd://" + hex.EncodeToString(sum[:])
	}
	s.InitContainerStatuses = nil
	for _, ic := range pod.Spec.InitContainers {
		s.InitContainerStatuses = append(s.InitContainerStatuses, corev1.ContainerStatus{
			Name: ic.Name, Image: ic.Image, ImageID: ic.Image, ContainerID: containerID(ic.Name),
			Ready: true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now,
			}},
		})
	}
	s.ContainerStatuses = nil
	for _, ct := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{
			Name: ct.Name, Image: ct.Image, ImageID: ct.Image, ContainerID: containerID(ct.Name),
			Ready: st.Ready,
		}
		started := running
		cs.Started = &started
		if running {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: string(st.Phase)}
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
}

// TokenOptions shapes a token made by Cluster.Token.
type TokenOptions struct {
	// Audiences of the token; empty means the API server's own audience (ServiceAccountIssuer).
	Audiences []string
	// Expiry is the requested lifetime; zero means one hour. The API server enforces at
	// least ten minutes.
	Expiry time.Duration
	// Pod, when set, binds the token to that pod in the same namespace, as kubelet-projected
	// tokens are: it stops validating once the pod is gone.
	Pod string
}

// Token returns a service-account token for ns/sa made through the TokenRequest API.
func (c *Cluster) Token(t testing.TB, ns, sa string, o TokenOptions) string {
	t.Helper()
	if o.Expiry == 0 {
		o.Expiry = time.Hour
	}
	seconds := int64(o.Expiry / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: o.Audiences, ExpirationSeconds: &seconds,
	}}
	ctx, cancel := requestContext()
	defer cancel()
	if o.Pod != "" {
		pod, err := c.client.CoreV1().Pods(ns).Get(ctx, o.Pod, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("kube: Token: the bound pod: %v", err)
		}
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{
			Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
		}
	}
	resp, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kube: requesting a token for %s/%s: %v", ns, sa, err)
	}
	return resp.Status.Token
}

// PodReady reports whether pod's Ready condition is True.
func PodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
