package kubelet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// readyPod creates a pod serving on 8080 in a new namespace and waits until it is Ready.
func readyPod(t *testing.T, c *localcluster.Cluster, name string) (ns string) {
	t.Helper()
	ns = c.Kube().Namespace(t)
	if _, err := c.Client().CoreV1().Pods(ns).Create(context.Background(), appPod(ns, name, true, "serve"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, c, ns, name, podTimeout, "Ready", kube.PodReady)
	return ns
}

// startKubectl starts the real kubectl with the admin kubeconfig, env added to this
// process's environment, for as long as ctx lasts (the test waits for it to end when it
// ends); it returns its stdout and a buffer collecting its stderr.
func startKubectl(t *testing.T, ctx context.Context, c *localcluster.Cluster, env []string, args ...string) (io.Reader, *strings.Builder) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, filepath.Join(kube.BinDir(), "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return out, stderr
}

// TestKubectlLogsFollow: kubectl logs -f keeps streaming a running container's output
// through the API server and the kubelet: ten more lines arrive after the first one read.
func TestKubectlLogsFollow(t *testing.T) {
	c := cluster(t)
	ns := readyPod(t, c, "web")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, stderr := startKubectl(t, ctx, c, nil, "-n", ns, "logs", "-f", "web")
	sc := bufio.NewScanner(out)
	first, last := -1, -1
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err != nil {
			continue
		}
		if first < 0 {
			first = n
		}
		last = n
		if last >= first+10 {
			return
		}
	}
	t.Fatalf("kubectl logs -f stopped after ticks %d..%d (want 10 more than the first): %v; stderr: %s", first, last, sc.Err(), stderr.String())
}

// TestKubectlLogsPrevious: after a container exits and the kubelet restarts it, kubectl
// logs --previous shows the exited instance's output and kubectl logs the new one's.
func TestKubectlLogsPrevious(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	pod := appPod(ns, "crashy", true, "crash-once", "/data")
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	if _, err := c.Client().CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first restart waits out the kubelet's 10s crash back-off.
	waitPod(t, c, ns, "crashy", podTimeout, "restarted and Ready", func(p *corev1.Pod) bool {
		return kube.PodReady(p) && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prev, stderr, err := kubectl(ctx, c, "-n", ns, "logs", "crashy", "--previous")
	if err != nil || prev != "first run\n" {
		t.Fatalf("kubectl logs --previous = %q, %v (stderr %s); want %q", prev, err, stderr, "first run\n")
	}
	cur, stderr, err := kubectl(ctx, c, "-n", ns, "logs", "crashy")
	if err != nil || !strings.HasPrefix(cur, "second run\nserving\n") {
		t.Fatalf("kubectl logs = %q, %v (stderr %s); want it to start with %q", cur, err, stderr, "second run\nserving\n")
	}
}

// protocols are the two streaming protocols kubectl speaks to the API server: WebSocket
// (v5.channel.k8s.io / portforward.k8s.io, the default in v1.34) and SPDY, chosen with
// kubectl's environment switches.
var protocols = []struct {
	name string
	env  []string
}{
	{"websocket", nil},
	{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}},
}

// TestKubectlExec: kubectl exec runs a command in the pod's container and returns its exit
// code, stdout and stderr apart, over both protocols.
func TestKubectlExec(t *testing.T) {
	c := cluster(t)
	ns := readyPod(t, c, "web")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stdout, stderr, err := kubectlEnv(ctx, c, proto.env, "-n", ns, "exec", "web", "--", "/app", "streams")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 {
				t.Fatalf("kubectl exec: %v (stdout %q, stderr %q); want exit code 3", err, stdout, stderr)
			}
			if stdout != "to stdout\n" {
				t.Errorf("stdout = %q, want %q", stdout, "to stdout\n")
			}
			if !strings.HasPrefix(stderr, "to stderr\n") {
				t.Errorf("stderr = %q, want it to start with %q", stderr, "to stderr\n")
			}
		})
	}
}

// forwardingRE is kubectl port-forward's announcement of its local port.
var forwardingRE = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

// TestKubectlPortForward: kubectl port-forward carries an HTTP request from a host
// loopback port to the pod's port 8080, over both protocols.
func TestKubectlPortForward(t *testing.T) {
	c := cluster(t)
	ns := readyPod(t, c, "web")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, stderr := startKubectl(t, ctx, c, proto.env, "-n", ns, "port-forward", "pod/web", "--address", "127.0.0.1", ":8080")
			sc := bufio.NewScanner(out)
			var port string
			for port == "" && sc.Scan() {
				if m := forwardingRE.FindStringSubmatch(sc.Text()); m != nil {
					port = m[1]
				}
			}
			if port == "" {
				t.Fatalf("kubectl port-forward announced no port: %v; stderr: %s", sc.Err(), stderr.String())
			}
			go func() { _, _ = io.Copy(io.Discard, out) }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET through the forwarded port: %v; kubectl stderr: %s", err, stderr.String())
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "hello from web\n" {
				t.Fatalf("GET through the forwarded port: %s %q; want 200 %q", resp.Status, body, "hello from web\n")
			}
		})
	}
}

// TestExecRefusedWithoutRBAC: a service account that may read pods but not create
// pods/exec is refused by the API server, while reading the pod works with the same token.
func TestExecRefusedWithoutRBAC(t *testing.T) {
	c := cluster(t)
	ns := readyPod(t, c, "web")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Kube().CreateServiceAccount(t, ns, "viewer")
	if _, err := c.Client().RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer-reads-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := c.Kube().Token(t, ns, "viewer", kube.TokenOptions{})
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Kube().Host(), CertificateAuthorityData: c.Kube().CA()}
	kc.AuthInfos["viewer"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "viewer", Namespace: ns}
	kc.CurrentContext = "local"
	path := filepath.Join(t.TempDir(), "viewer.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	// RBAC changes reach the authorizer's cache shortly after they are written.
	var lastErr string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, stderr, err := kubectl(ctx, c, "--kubeconfig", path, "get", "pod", "web")
		lastErr = fmt.Sprintf("%v: %s", err, stderr)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the viewer cannot read the pod: %s", lastErr)
	}
	stdout, stderr, err := kubectl(ctx, c, "--kubeconfig", path, "exec", "web", "--", "/app", "streams")
	want := `cannot create resource "pods/exec"`
	if err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("kubectl exec as the viewer: %v, stdout %q, stderr %q; want a refusal saying %s", err, stdout, stderr, want)
	}
	if strings.Contains(stdout, "to stdout") {
		t.Fatalf("the refused exec ran the command: stdout %q", stdout)
	}
}

// TestMissingImageReportsErrImagePull: a pod whose image is in no registry waits with
// ErrImagePull or ImagePullBackOff, and the message names the image.
func TestMissingImageReportsErrImagePull(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	const missing = "ghcr.io/l5d-test/no-such-image:v9"
	pod := appPod(ns, "missing", false, "serve")
	pod.Spec.Containers[0].Image = missing
	if _, err := c.Client().CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, c, ns, "missing", podTimeout, "image pull failure reported", func(p *corev1.Pod) bool {
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return false
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") && strings.Contains(w.Message, missing)
	})
	t.Logf("waiting: %+v", p.Status.ContainerStatuses[0].State.Waiting)
}

// TestSecondNode: the second real node (its kubelet on KubeletPort+1 in the shared node
// namespace) runs a pod, and the API server reaches that kubelet for exec and logs.
func TestSecondNode(t *testing.T) {
	c := cluster(t)
	second := c.NodeNames()[1]
	ns := c.Kube().Namespace(t)
	pod := appPod(ns, "web", true, "serve")
	pod.Spec.NodeName = second
	if _, err := c.Client().CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, c, ns, "web", podTimeout, "Ready", kube.PodReady)
	node, err := c.Client().CoreV1().Nodes().Get(context.Background(), second, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if port := node.Status.DaemonEndpoints.KubeletEndpoint.Port; port != localcluster.KubeletPort+1 {
		t.Errorf("node %s's kubelet port is %d, want %d", second, port, localcluster.KubeletPort+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, err := kubectl(ctx, c, "-n", ns, "exec", "web", "--", "/app", "streams")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || stdout != "to stdout\n" {
		t.Fatalf("kubectl exec on %s: %v, stdout %q, stderr %q; want exit code 3 and %q", second, err, stdout, stderr, "to stdout\n")
	}
	logs, stderr, err := kubectl(ctx, c, "-n", ns, "logs", "web")
	if err != nil || !strings.HasPrefix(logs, "serving\n") {
		t.Fatalf("kubectl logs on %s: %q, %v (stderr %s)", second, logs, err, stderr)
	}
}

// TestKubectlAttach: kubectl attach streams a running container's output as it is written,
// over both protocols.
func TestKubectlAttach(t *testing.T) {
	c := cluster(t)
	ns := readyPod(t, c, "web")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, stderr := startKubectl(t, ctx, c, proto.env, "-n", ns, "attach", "web", "-c", "app")
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var n int
				if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err == nil {
					return
				}
			}
			t.Fatalf("kubectl attach showed no tick: %v; stderr: %s", sc.Err(), stderr.String())
		})
	}
}

// TestServiceByNameFromAnotherPod: a pod on one real node reaches a pod on the other
// through a Service named by its short name and its FQDN (the kubelet's resolv.conf names
// the cluster DNS; kube-proxy's rules in the node namespace carry the cluster IP).
func TestServiceByNameFromAnotherPod(t *testing.T) {
	c := cluster(t)
	names := c.NodeNames()
	ns := c.Kube().Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server := appPod(ns, "web", true, "serve")
	server.Labels = map[string]string{"app": "web"}
	server.Spec.NodeName = names[0]
	client := appPod(ns, "client", true, "serve")
	client.Spec.NodeName = names[1]
	for _, p := range []*corev1.Pod{server, client} {
		if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, c, ns, "web", podTimeout, "Ready", kube.PodReady)
	waitPod(t, c, ns, "client", podTimeout, "Ready", kube.PodReady)
	for _, url := range []string{"http://web/", "http://web." + ns + ".svc.cluster.local/"} {
		// kube-proxy programs the Service's rules shortly after its endpoints appear.
		var stdout, stderr string
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			var err error
			stdout, stderr, err = kubectl(ctx, c, "-n", ns, "exec", "client", "--", "/app", "get", url)
			return err == nil, nil
		})
		if err != nil || stdout != "hello from web\n" {
			t.Fatalf("GET %s from the client pod: %q, %v (stderr %q); want %q", url, stdout, err, stderr, "hello from web\n")
		}
	}
}

// TestChartSecurityContexts runs the test program under the securityContexts l5d's charts
// give controllers (non-root uid, all capabilities dropped, read-only root, RuntimeDefault
// seccomp) and proxy-init (uid 65534 adding NET_ADMIN and NET_RAW): both start, and what
// the process gets is what the kubelet and runc give on any cluster. A non-root process
// gets added capabilities in its bounding set only, not its effective one, so an image
// running iptables as 65534 needs file capabilities on the binaries, as Linkerd's
// proxy-init image has.
func TestChartSecurityContexts(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	controller := appPod(ns, "controller", true, "serve")
	controller.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsNonRoot:             ptr(true),
		RunAsUser:                ptr[int64](2103),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	init := appPod(ns, "init", true, "serve")
	init.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
		Privileged:               ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsNonRoot:             ptr(true),
		RunAsUser:                ptr[int64](65534),
	}
	for _, p := range []*corev1.Pod{controller, init} {
		if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13: 0x3000.
	for name, want := range map[string]string{
		"controller": "uid=2103 capeff=0000000000000000 capbnd=0000000000000000 rootfs=ro\n",
		"init":       "uid=65534 capeff=0000000000000000 capbnd=",
	} {
		waitPod(t, c, ns, name, podTimeout, "Ready", kube.PodReady)
		stdout, stderr, err := kubectl(ctx, c, "-n", ns, "exec", name, "--", "/app", "whoami")
		if err != nil || !strings.HasPrefix(stdout, want) {
			t.Fatalf("pod %s: whoami = %q, %v (stderr %q); want it to start with %q", name, stdout, err, stderr, want)
		}
		if name == "init" {
			var bnd uint64
			if _, err := fmt.Sscanf(strings.TrimPrefix(stdout, want), "%x", &bnd); err != nil || bnd&0x3000 != 0x3000 || !strings.HasSuffix(stdout, " rootfs=ro\n") {
				t.Errorf("pod init: %q: want NET_ADMIN and NET_RAW (0x3000) in the bounding set and a read-only root", stdout)
			}
		}
	}
}
