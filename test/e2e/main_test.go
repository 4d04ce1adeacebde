// Package e2e runs l5d the way a user meets it, on a whole local cluster
// (test/localcluster) of three real nodes (the kubelet on containerd, pods from l5d's own
// images built from bin/ into the cluster's registry): install with the linkerd CLI (--ha, with a trust
// anchor and issuer of the suite's own so it can rotate the issuer), check, and mesh
// workloads. One cluster and one control plane serve every test of the package, in order;
// each test uses namespaces of its own and leaves the control plane as it found it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/test/demo/traffic"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	"github.com/l5d-go/l5d/test/suite"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// suiteTimeout bounds the whole suite: setup and every test.
const suiteTimeout = 20 * time.Minute

// issuanceLifetime is the life of the workload certificates the suite's identity
// controller issues: short, so that proxies renew (at 70%) within a test's span, and
// an issuer rotation reaches every proxy in about a minute and a half.
const issuanceLifetime = 2 * time.Minute

// Suite is the one cluster every test shares.
type Suite struct {
	// Root is the repository root.
	Root    string
	Cluster *localcluster.Cluster
	// Anchor is the trust anchor the control plane was installed with (its key lets a
	// test sign a new issuer); Issuer the issuer it was installed with.
	Anchor, Issuer *certs.Authority
	// Ctx ends at the suite's deadline.
	Ctx context.Context
}

// shared is the one set-up every test of the package uses.
var shared = suite.Shared[*Suite]{
	Name:     "e2e",
	Timeout:  suiteTimeout,
	SetUp:    setUp,
	DumpLogs: (*Suite).dumpLogs,
}

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

// need returns the suite, skipping t when it cannot run here and failing it when the
// set-up failed.
func need(t *testing.T) *Suite { return shared.Need(t) }

// setUp starts the cluster and installs the control plane with the CLI, as a user
// would: check --pre, install --crds | kubectl apply, install --ha | kubectl apply, check.
func setUp(ctx context.Context) (s *Suite, cleanup func(), err error) {
	var undo suite.Undo
	cleanup = undo.Run
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, cleanup, err
	}
	plugins, err := exec.CommandContext(ctx, filepath.Join(root, "tools", "cni-plugins", "build.sh")).Output()
	if err != nil {
		return nil, cleanup, fmt.Errorf("e2e needs the standard CNI plugins (make cni-plugins): %w", err)
	}
	runDir, err := os.MkdirTemp("", "l5d-e2e-")
	if err != nil {
		return nil, cleanup, err
	}
	undo.Add(func() { os.RemoveAll(runDir) })
	logFile, err := os.Create(filepath.Join(runDir, "cluster.log"))
	if err != nil {
		return nil, cleanup, err
	}
	undo.Add(func() { logFile.Close() })
	c, err := localcluster.Up(ctx, localcluster.Options{
		RunDir: runDir, Nodes: 3, Kubelet: true, L5DImages: root,
		CNIPlugins: strings.TrimSpace(string(plugins)),
		Logger:     slog.New(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		return nil, cleanup, fmt.Errorf("starting the local cluster: %w", err)
	}
	undo.Add(func() { c.Close() })
	s = &Suite{Root: root, Cluster: c, Ctx: ctx}

	v := certs.ValidFor(time.Now(), 24*time.Hour)
	if s.Anchor, err = certs.NewTrustAnchor(certs.DefaultAnchorCommonName, v); err != nil {
		return s, cleanup, err
	}
	if s.Issuer, err = s.Anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), v); err != nil {
		return s, cleanup, err
	}
	certDir := filepath.Join(runDir, "certs")
	key, err := certs.EncodePrivateKeyPEM(s.Issuer.Key)
	if err != nil {
		return s, cleanup, err
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return s, cleanup, err
	}
	for name, data := range map[string][]byte{
		"ca.crt":     certs.EncodeCertificatesPEM(s.Anchor.Cert),
		"issuer.crt": certs.EncodeCertificatesPEM(s.Issuer.Cert),
		"issuer.key": key,
	} {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			return s, cleanup, err
		}
	}

	if _, err := s.Run(nil, s.Linkerd(), "check", "--pre"); err != nil {
		return s, cleanup, err
	}
	crds, err := s.Run(nil, s.Linkerd(), "install", "--crds")
	if err != nil {
		return s, cleanup, err
	}
	if _, err := s.Run([]byte(crds), s.Kubectl(), "apply", "-f", "-"); err != nil {
		return s, cleanup, err
	}
	cp, err := s.Run(nil, s.Linkerd(), "install", "--ha",
		"--identity-trust-anchors-file", filepath.Join(certDir, "ca.crt"),
		"--identity-issuer-certificate-file", filepath.Join(certDir, "issuer.crt"),
		"--identity-issuer-key-file", filepath.Join(certDir, "issuer.key"),
		"--set", "identity.issuer.issuanceLifetime="+issuanceLifetime.String())
	if err != nil {
		return s, cleanup, err
	}
	if _, err := s.Run([]byte(cp), s.Kubectl(), "apply", "-f", "-"); err != nil {
		return s, cleanup, err
	}
	if _, err := s.Run(nil, s.Linkerd(), "check", "--wait", "6m"); err != nil {
		return s, cleanup, err
	}
	return s, cleanup, nil
}

// Linkerd is the path of our linkerd CLI; Kubectl that of kubectl.
func (s *Suite) Linkerd() string { return filepath.Join(s.Root, "bin", "linkerd") }

// Kubectl is the path of the kubectl binary from the test substrate.
func (s *Suite) Kubectl() string { return filepath.Join(kube.BinDir(), "kubectl") }

// Run runs a command with the cluster's kubeconfig and stdin, returning its stdout, or an
// error carrying its output.
func (s *Suite) Run(stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(s.Ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Cluster.Kubeconfig())
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s\n%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// MustRun is Run failing t on error.
func (s *Suite) MustRun(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	out, err := s.Run(stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Apply applies YAML manifests with kubectl.
func (s *Suite) Apply(t *testing.T, yaml string) {
	t.Helper()
	s.MustRun(t, []byte(yaml), s.Kubectl(), "apply", "-f", "-")
}

// Namespace creates a namespace with the given annotations (for example
// linkerd.io/inject: enabled) and deletes it when t ends.
func (s *Suite) Namespace(t *testing.T, name string, annotations map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	if _, err := s.Cluster.Client().CoreV1().Namespaces().Create(s.Ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	s.deleteAtCleanup(t, name)
}

// deleteAtCleanup deletes namespace ns when t ends, first printing its pods' logs if t
// failed (they go with the pods).
func (s *Suite) deleteAtCleanup(t *testing.T, ns string) {
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpNamespaceLogs(os.Stdout, ns)
		}
		_ = s.Cluster.Client().CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
}

// Eventually polls cond every interval until it returns "" (done) or the deadline
// passes; then it fails t with the last reason cond gave.
func (s *Suite) Eventually(t *testing.T, within time.Duration, what string, cond func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.Ctx, within)
	defer cancel()
	why := "never checked"
	for {
		if why = cond(); why == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not after %v: %s", what, within, why)
		case <-time.After(time.Second): // poll interval
		}
	}
}

// PodsReady returns the namespace's pods matching selector when there are n of them,
// each Ready and (when meshed) with a linkerd-proxy container; else "" pods and why not.
func (s *Suite) PodsReady(ns, selector string, n int, meshed bool) ([]corev1.Pod, string) {
	list, err := s.Cluster.Client().CoreV1().Pods(ns).List(s.Ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err.Error()
	}
	var why []string
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		live = append(live, p)
		if meshed && !hasProxy(&p) {
			why = append(why, p.Name+": not injected")
		} else if !podReady(&p) {
			why = append(why, p.Name+": not ready ("+string(p.Status.Phase)+")")
		}
	}
	if len(live) != n {
		why = append(why, fmt.Sprintf("%d pods match %q, want %d", len(live), selector, n))
	}
	if len(why) > 0 {
		return nil, strings.Join(why, "; ")
	}
	return live, ""
}

// WaitPodsReady waits (up to within) for PodsReady and returns the pods.
func (s *Suite) WaitPodsReady(t *testing.T, within time.Duration, ns, selector string, n int, meshed bool) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	s.Eventually(t, within, fmt.Sprintf("%d ready pods %q in %s", n, selector, ns), func() string {
		var why string
		pods, why = s.PodsReady(ns, selector, n, meshed)
		return why
	})
	return pods
}

func hasProxy(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == "linkerd-proxy" {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodGet GETs path on a pod's port through the API server's pod proxy (as
// `kubectl get --raw` does).
func (s *Suite) PodGet(ns, pod string, port int, path string) ([]byte, error) {
	return s.Cluster.Client().CoreV1().RESTClient().Get().
		AbsPath("/api/v1/namespaces", ns, "pods", fmt.Sprintf("%s:%d", pod, port), "proxy", strings.TrimPrefix(path, "/")).
		DoRaw(s.Ctx)
}

// ProxyMetrics returns the Prometheus text of a meshed pod's proxy (admin port 4191).
func (s *Suite) ProxyMetrics(ns, pod string) (string, error) {
	b, err := s.PodGet(ns, pod, 4191, "/metrics")
	return string(b), err
}

// TrafficStats reads a demo-traffic pod's counts from its admin port's /stats.
func (s *Suite) TrafficStats(ns, pod string) (traffic.Stats, error) {
	var st traffic.Stats
	b, err := s.PodGet(ns, pod, 9990, "/stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("stats of %s/%s: %w: %s", ns, pod, err, b)
	}
	return st, nil
}

// dumpLogs writes the tail of every container log and of the cluster's own log.
func (s *Suite) dumpLogs(w io.Writer) {
	s.dumpNamespaceLogs(w, "*")
	s.dumpFiles(w, []string{filepath.Join(s.Cluster.RunDir(), "cluster.log")})
}

// dumpNamespaceLogs writes the tail of every container log of the pods in namespace ns
// (a glob pattern), a restarted container's earlier runs too.
func (s *Suite) dumpNamespaceLogs(w io.Writer, ns string) {
	s.dumpFiles(w, localcluster.PodLogFiles(s.Cluster.RunDir(), ns))
}

// dumpFiles writes the tail of each file.
func (s *Suite) dumpFiles(w io.Writer, logs []string) {
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		fmt.Fprintf(w, "== %s\n%s\n", l, b)
	}
}
