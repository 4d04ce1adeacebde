package mesh

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/iptables"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
)

func testLogger() *slog.Logger {
	if os.Getenv("L5D_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// world is the shared state of a mesh test.
type world struct {
	c     *kube.Cluster
	n     *netns.Network
	cp    *controlPlane
	appNS string
	dir   string // readable by the proxies' uid
	proxy string
	// proxies are the meshed pods' proxy processes, by pod name.
	proxies map[string]*netns.Process
}

func newWorld(t *testing.T, lifetime time.Duration) *world {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	c := kube.Shared(t)
	for _, f := range []string{"serviceprofile.yaml", "policy.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		c.Apply(t, "", string(b))
	}
	for _, crd := range []string{"serviceprofiles.linkerd.io", "servers.policy.linkerd.io", "serverauthorizations.policy.linkerd.io", "authorizationpolicies.policy.linkerd.io",
		"meshtlsauthentications.policy.linkerd.io", "networkauthentications.policy.linkerd.io", "httproutes.policy.linkerd.io"} {
		c.WaitCRD(t, crd)
	}
	dir, err := os.MkdirTemp("", "l5d-mesh-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/l5d-go/l5d/proxy/cmd/proxy").CombinedOutput(); err != nil {
		t.Fatalf("building the proxy: %v\n%s", err, out)
	}
	n := netns.New(t)
	w := &world{c: c, n: n, dir: dir, proxy: bin, proxies: map[string]*netns.Process{}}
	w.cp = startControlPlane(t, c, n, lifetime)
	w.appNS = c.Namespace(t)
	c.CreateNode(t, kube.Node{Name: "node-1"})
	return w
}

// pod makes a pod in the API (ServiceAccount sa, label app=name) and in the network; when
// meshed it gets proxy-init's rules and a proxy with an identity token for that pod.
func (w *world) pod(t *testing.T, name, sa string, meshed bool, annotations map[string]string) *netns.Pod {
	return w.podWithEnv(t, name, sa, meshed, annotations, nil)
}

// podWithEnv is pod whose proxy gets the variables env ("NAME=value") besides its own.
func (w *world) podWithEnv(t *testing.T, name, sa string, meshed bool, annotations map[string]string, env []string) *netns.Pod {
	p := w.n.Pod(t, name)
	w.c.CreateServiceAccount(t, w.appNS, sa)
	containers := []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}
	if meshed {
		containers = append(containers, corev1.Container{Name: "linkerd-proxy", Image: "proxy"})
	}
	w.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.appNS, Labels: map[string]string{"app": name}, Annotations: annotations},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: containers}})
	w.c.SetPodStatus(t, w.appNS, name, kube.PodStatus{Node: "node-1", IPs: []string{p.IPv4.String()}, Ready: true})
	if !meshed {
		return p
	}
	token := w.c.Token(t, w.appNS, sa, kube.TokenOptions{Audiences: []string{certify.TokenAudience}, Pod: name})
	tokenFile := filepath.Join(w.dir, name+".token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o644); err != nil {
		t.Fatal(err)
	}
	backends, _ := iptables.ModeBackends(iptables.ModeNFT, false)
	cfg := iptables.DefaultConfig()
	cfg.InboundPortsToIgnore, _ = proxyconf.ParsePorts("4190,4191")
	if err := (&iptables.Installer{Config: cfg, Backends: backends, NetNS: p.Path()}).Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	gw := "10.244.0.1"
	cmd := netns.AsUser(exec.Command(w.proxy), 2102, 2102)
	cmd.Env = []string{
		"LINKERD2_PROXY_LOG=" + proxyLogLevel(),
		"LINKERD2_PROXY_INBOUND_LISTEN_ADDR=0.0.0.0:4143",
		"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=127.0.0.1:4140",
		"LINKERD2_PROXY_ADMIN_LISTEN_ADDR=0.0.0.0:4191",
		"LINKERD2_PROXY_IDENTITY_SVC_ADDR=" + gw + ":8080",
		"LINKERD2_PROXY_IDENTITY_SVC_NAME=" + w.cp.idName,
		"LINKERD2_PROXY_IDENTITY_LOCAL_NAME=" + sa + "." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain,
		"LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS=" + w.cp.anchorsPEM,
		"LINKERD2_PROXY_IDENTITY_TOKEN_FILE=" + tokenFile,
		"LINKERD2_PROXY_DESTINATION_SVC_ADDR=" + gw + ":8086",
		"LINKERD2_PROXY_DESTINATION_SVC_NAME=" + w.cp.dstName,
		"LINKERD2_PROXY_DESTINATION_CONTEXT={\"ns\":\"" + w.appNS + "\"}",
		"LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES=svc.cluster.local.",
		"LINKERD2_PROXY_POLICY_SVC_ADDR=" + gw + ":8090",
		"LINKERD2_PROXY_POLICY_SVC_NAME=" + w.cp.dstName,
		"LINKERD2_PROXY_POLICY_WORKLOAD=" + w.appNS + ":" + name,
		"LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=all-unauthenticated",
	}
	cmd.Env = append(cmd.Env, env...)
	var logs strings.Builder
	cmd.Stderr = &logs
	proc, err := p.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	w.proxies[name] = proc
	t.Cleanup(func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("proxy in %s logged:\n%s", name, logs.String())
		}
	})
	eventually.True(t, "the proxy in "+name+" to be ready (certificate issued)", func() bool {
		return podGet(p, "http://127.0.0.1:4191/ready", "") == 200
	})
	return p
}

// service makes Service name selecting app=name on port 8080.
func (w *world) service(t *testing.T, name string) string {
	if _, err := w.c.Client().CoreV1().Services(w.appNS).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name + "." + w.appNS + ".svc.cluster.local:8080"
}

// serveApp answers every request in p on :8080 with the pod name.
func serveApp(t *testing.T, p *netns.Pod) {
	ln, err := p.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, p.PodName) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// podGet makes a GET from inside p (to addr's URL, with Host when set) and returns the
// status, or 0 when the request failed.
func podGet(p *netns.Pod, url, host string) int {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return p.Dial(ctx, network, addr) }}}
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func podBody(t *testing.T, p *netns.Pod, url string) string {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return p.Dial(ctx, network, addr) }}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// proxyLogLevel is the meshed pods' proxy log level: warn, or L5D_TEST_PROXY_LOG.
func proxyLogLevel() string {
	if l := os.Getenv("L5D_TEST_PROXY_LOG"); l != "" {
		return l
	}
	return "warn"
}
