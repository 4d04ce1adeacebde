package localcluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// shared is the package's one cluster, started by the first test that needs it.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// testImageDir is the shared cluster's image directory (Options.BinDirs).
var testImageDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "l5d-localcluster-images-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testImageDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if shared.c != nil {
		if err := shared.c.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "localcluster: closing:", err)
			code = 1
		}
		if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
			fmt.Fprintln(os.Stderr, "localcluster: namespaces left behind:", left, err)
			code = 1
		}
		if os.Getenv("L5D_KUBE_KEEP") == "1" {
			fmt.Fprintln(os.Stderr, "localcluster: L5D_KUBE_KEEP=1: kept", shared.c.RunDir())
		} else {
			os.RemoveAll(shared.c.RunDir())
		}
	}
	os.Exit(code)
}

// cluster returns the shared cluster, starting it on first use; it skips the test without
// root or with L5D_SKIP_KUBE=1.
func cluster(t *testing.T) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("localcluster: needs root")
	}
	if os.Getenv("L5D_SKIP_KUBE") == "1" {
		t.Skip("L5D_SKIP_KUBE=1")
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "l5d-localcluster-test-")
		if err != nil {
			shared.err = err
			return
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		shared.c, shared.err = Up(context.Background(), Options{RunDir: dir, BinDirs: []string{testImageDir}, Logger: log})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

var podSeq atomic.Int64

// addPod adds a netns pod (not a Kubernetes pod) to the cluster's network.
func addPod(t *testing.T, c *Cluster, role string) *netns.Pod {
	t.Helper()
	p, err := c.Network().AddPod(fmt.Sprintf("t%d-%s", podSeq.Add(1), role))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serveHTTP serves a fixed body on port inside pod until the test ends.
func serveHTTP(t *testing.T, pod *netns.Pod, port int, body string) {
	t.Helper()
	ln, err := pod.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// exposePod makes Service name (port -> targetPort, no selector) whose EndpointSlice holds
// pod's address, as the endpointslice controller would for a real pod, and returns the
// Service's cluster IP.
func exposePod(t *testing.T, c *Cluster, ns, name string, pod *netns.Pod, port, targetPort int32) string {
	t.Helper()
	ctx := context.Background()
	s, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "http", Port: port, TargetPort: intstr.FromInt32(targetPort), Protocol: corev1.ProtocolTCP,
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := true
	portName, proto := "http", corev1.ProtocolTCP
	_, err = c.Client().DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-1", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{pod.IPv4.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName: ptr(c.NodeName()),
		}},
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &targetPort, Protocol: &proto}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.ClusterIP
}

// run runs argv in pod and returns its standard output, or an error with its stderr.
func run(pod *netns.Pod, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := pod.Run(cmd); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func TestClusterIPReachesPodThroughKubeProxy(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	web, client := addPod(t, c, "web"), addPod(t, c, "client")
	serveHTTP(t, web, 8080, "hello from web")
	ip := exposePod(t, c, ns, "web", web, 80, 8080)
	if !ServiceCIDR.Contains(mustAddr(t, ip)) {
		t.Fatalf("cluster IP %s is outside %s", ip, ServiceCIDR)
	}
	eventually.NoError(t, "curl the cluster IP from another pod", func() error {
		out, err := run(client, "curl", "-sS", "--max-time", "5", "http://"+ip+"/")
		if err != nil {
			return err
		}
		if out != "hello from web" {
			return fmt.Errorf("got %q", out)
		}
		return nil
	})
	// The node (and so the API server's egress) reaches it too.
	conn, err := c.DialPod(context.Background(), "web."+ns+".svc:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\n\r\n")
	b, _ := io.ReadAll(conn)
	if !strings.HasSuffix(string(b), "hello from web") {
		t.Errorf("DialPod to the Service name: got %q", b)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestHostsFileResolvesServiceNamesInsidePods(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	web, client := addPod(t, c, "web"), addPod(t, c, "client")
	serveHTTP(t, web, 8080, "hello by name")
	ip := exposePod(t, c, ns, "named", web, 80, 8080)
	name := "named." + ns + ".svc.cluster.local"
	// The hosts file is bind-mounted over /etc/hosts in a mount namespace of the pod
	// process's own, as the node agent does for containers.
	script := fmt.Sprintf(`mount --bind %s /etc/hosts && getent hosts %s && curl -sS --max-time 5 http://%s/`, c.HostsFile(), name, name)
	eventually.NoError(t, "resolve and curl the Service name", func() error {
		out, err := run(client, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
		if err != nil {
			return err
		}
		if want := ip + " "; !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "hello by name") {
			return fmt.Errorf("got %q; want getent's %q line, then the body", out, ip)
		}
		return nil
	})
}

// selfSigned makes a serving certificate for dnsName and returns it with its PEM.
func selfSigned(t *testing.T, dnsName string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestAPIServerCallsWebhookServedByPodBehindService(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	hookPod := addPod(t, c, "hook")
	cert, caPEM := selfSigned(t, "hook."+ns+".svc")
	var calls atomic.Int64
	ln, err := hookPod.Listen("tcp", ":8443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: kube.AdmissionFunc(func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			calls.Add(1)
			if req.Name == "deny-me" {
				return kube.Denied("refused by the webhook in pod " + hookPod.IPv4.String())
			}
			return kube.Allowed()
		}),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	exposePod(t, c, ns, "hook", hookPod, 443, 8443)

	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-hook"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "hook.l5d.test",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "hook", Port: ptr[int32](443), Path: ptr("/validate")},
				CABundle: caPEM,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr[int32](10),
		}},
	}
	ctx := context.Background()
	if _, err := c.Client().AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client().AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
	want := "refused by the webhook in pod " + hookPod.IPv4.String()
	eventually.NoError(t, "the API server asks the webhook", func() error {
		_, err := c.Client().CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "deny-me"}}, metav1.CreateOptions{})
		if err == nil {
			_ = c.Client().CoreV1().ConfigMaps(ns).Delete(ctx, "deny-me", metav1.DeleteOptions{})
			return errors.New("created a config map the webhook refuses (the webhook configuration is not in effect yet?)")
		}
		if !strings.Contains(err.Error(), want) {
			return err
		}
		return nil
	})
	if _, err := c.Client().CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("a config map the webhook allows: %v", err)
	}
	if calls.Load() < 2 {
		t.Errorf("the webhook saw %d requests, want at least 2", calls.Load())
	}
}

func TestPodReachesAPIServerThroughKubernetesService(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	pod := addPod(t, c, "incluster")
	token := c.Kube().Token(t, ns, "default", kube.TokenOptions{})
	// What rest.InClusterConfig builds from KUBERNETES_SERVICE_HOST/PORT, the token and
	// the CA file, with every connection made inside the pod.
	cfg := &rest.Config{
		Host:            "https://" + net.JoinHostPort(APIServiceIP.String(), "443"),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.Kube().CA()},
		Dial:            pod.Dial,
		Timeout:         10 * time.Second,
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var user string
	eventually.NoError(t, "a self-subject review from inside the pod", func() error {
		r, err := client.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		user = r.Status.UserInfo.Username
		return nil
	})
	if want := "system:serviceaccount:" + ns + ":default"; user != want {
		t.Errorf("the API server saw user %q, want %q", user, want)
	}
	// The "kubernetes" Service's endpoint is the node address the relay listens on.
	eps, err := c.Client().DiscoveryV1().EndpointSlices("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(eps.Endpoints)
	if len(eps.Endpoints) != 1 || len(eps.Endpoints[0].Addresses) != 1 || eps.Endpoints[0].Addresses[0] != NodeIP.String() ||
		len(eps.Ports) != 1 || int(*eps.Ports[0].Port) != int(c.APIServerAddr().Port()) {
		t.Errorf("kubernetes EndpointSlice: %s ports %v; want %s", b, eps.Ports, c.APIServerAddr())
	}
}
