// Package multicluster runs Linkerd's multicluster extension the way a user meets it, on
// two local clusters side by side (test/localcluster), "west" and "east", each with its
// own pod, Service and load-balancer ranges, joined by a route between their node
// namespaces (localcluster.Connect): the control plane installed in both with the CLI and
// one trust anchor (an issuer of each cluster's own), `linkerd multicluster install` in
// each, and `linkerd --context=east multicluster link --cluster-name east | kubectl
// --context=west apply -f -` through one kubeconfig holding both contexts, as the
// documentation shows. The tests then run in order on that pair.
package multicluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	"github.com/l5d-go/l5d/test/netns"
	"github.com/l5d-go/l5d/test/suite"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// suiteTimeout bounds the whole suite: setup and every test.
const suiteTimeout = 20 * time.Minute

// eastAddresses is east's address plan; west has the defaults (10.244.0.0/16 pods,
// 10.96.0.0/16 Services, 10.250.0.0/24 load balancers).
var eastAddresses = localcluster.Addresses{
	PodCIDR:          mustPrefix("10.245.0.0/16"),
	PodCIDRv6:        mustPrefix("fd00:245::/64"),
	ServiceCIDR:      mustPrefix("10.97.0.0/16"),
	LoadBalancerCIDR: mustPrefix("10.251.0.0/24"),
}

// Suite is the pair of linked clusters every test shares.
type Suite struct {
	Root, Bins string
	West, East *localcluster.Cluster
	// Kubeconfig holds the contexts "west" and "east" (API servers on host loopback);
	// NodeKubeconfig the same contexts at the API servers' node addresses, for commands
	// run in west's node namespace (RunOnNode), which reaches both.
	Kubeconfig, NodeKubeconfig string
	Anchor                     *certs.Authority
	Ctx                        context.Context
}

// shared is the one set-up every test of the package uses.
var shared = suite.Shared[*Suite]{
	Name:     "multicluster",
	Timeout:  suiteTimeout,
	SetUp:    setUp,
	DumpLogs: (*Suite).dumpLogs,
}

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

// need returns the suite, skipping t when it cannot run here and failing it when the
// set-up failed.
func need(t *testing.T) *Suite { return shared.Need(t) }

// setUp starts both clusters, connects them, installs the control plane and the
// multicluster extension in each and links east into west.
func setUp(ctx context.Context) (s *Suite, cleanup func(), err error) {
	var undo suite.Undo
	cleanup = undo.Run
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, cleanup, err
	}
	bins, err := localcluster.PodBinaries(filepath.Join(root, "bin"))
	if bins != "" {
		undo.Add(func() { os.RemoveAll(bins) })
	}
	if err != nil {
		return nil, cleanup, err
	}
	runDir, err := os.MkdirTemp("", "l5d-multicluster-")
	if err != nil {
		return nil, cleanup, err
	}
	if os.Getenv("L5D_KUBE_KEEP") == "" {
		undo.Add(func() { os.RemoveAll(runDir) })
	}
	s = &Suite{Root: root, Bins: bins, Ctx: ctx}
	for _, c := range []struct {
		name  string
		addrs localcluster.Addresses
		dst   **localcluster.Cluster
	}{{"west", localcluster.Addresses{}, &s.West}, {"east", eastAddresses, &s.East}} {
		dir := filepath.Join(runDir, c.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return s, cleanup, err
		}
		logFile, err := os.Create(filepath.Join(dir, "cluster.log"))
		if err != nil {
			return s, cleanup, err
		}
		undo.Add(func() { logFile.Close() })
		cl, err := localcluster.Up(ctx, localcluster.Options{
			RunDir: dir, BinDirs: []string{bins}, Addresses: c.addrs,
			NodeName: c.name + "-node", Logger: slog.New(slog.NewTextHandler(logFile, nil)),
		})
		if err != nil {
			return s, cleanup, fmt.Errorf("starting cluster %s: %w", c.name, err)
		}
		undo.Add(func() { cl.Close() })
		*c.dst = cl
	}
	if err := localcluster.Connect(s.West, s.East); err != nil {
		return s, cleanup, err
	}
	s.Kubeconfig = filepath.Join(runDir, "kubeconfig")
	if err := mergeKubeconfigs(s.Kubeconfig, map[string]string{"west": s.West.Kubeconfig(), "east": s.East.Kubeconfig()}); err != nil {
		return s, cleanup, err
	}
	s.NodeKubeconfig = filepath.Join(runDir, "node-kubeconfig")
	if err := mergeKubeconfigs(s.NodeKubeconfig, map[string]string{"west": s.West.NodeKubeconfig(), "east": s.East.NodeKubeconfig()}); err != nil {
		return s, cleanup, err
	}

	// One trust anchor; each cluster's issuer of its own, signed by it.
	v := certs.ValidFor(time.Now(), 24*time.Hour)
	if s.Anchor, err = certs.NewTrustAnchor(certs.DefaultAnchorCommonName, v); err != nil {
		return s, cleanup, err
	}
	certDir := filepath.Join(runDir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return s, cleanup, err
	}
	anchorFile := filepath.Join(certDir, "ca.crt")
	if err := os.WriteFile(anchorFile, certs.EncodeCertificatesPEM(s.Anchor.Cert), 0o600); err != nil {
		return s, cleanup, err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ctxName := range []string{"west", "east"} {
		issuer, err := s.Anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), v)
		if err != nil {
			return s, cleanup, err
		}
		key, err := certs.EncodePrivateKeyPEM(issuer.Key)
		if err != nil {
			return s, cleanup, err
		}
		crtFile, keyFile := filepath.Join(certDir, ctxName+"-issuer.crt"), filepath.Join(certDir, ctxName+"-issuer.key")
		if err := os.WriteFile(crtFile, certs.EncodeCertificatesPEM(issuer.Cert), 0o600); err != nil {
			return s, cleanup, err
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			return s, cleanup, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.install(ctxName, anchorFile, crtFile, keyFile)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return s, cleanup, err
	}

	// The link, as the documentation shows it; east's API server as west's pods reach it,
	// at kubeadm's port, which the control plane's proxies skip.
	apiServer := netip.AddrPortFrom(s.East.NodeIP(), localcluster.APIServerNodePort)
	link, err := s.Run(nil, s.Linkerd(), "--context=east", "multicluster", "link", "--cluster-name", "east",
		"--api-server-address", "https://"+apiServer.String())
	if err != nil {
		return s, cleanup, err
	}
	if _, err := s.Run([]byte(link), s.Kubectl(), "--context=west", "apply", "-f", "-"); err != nil {
		return s, cleanup, err
	}
	return s, cleanup, nil
}

// install puts the control plane (one replica of each part), then the multicluster
// extension, into the cluster of context ctxName, and waits for its gateway's address.
func (s *Suite) install(ctxName, anchor, issuerCrt, issuerKey string) error {
	cx := "--context=" + ctxName
	crds, err := s.Run(nil, s.Linkerd(), cx, "install", "--crds")
	if err != nil {
		return err
	}
	if _, err := s.Run([]byte(crds), s.Kubectl(), cx, "apply", "-f", "-"); err != nil {
		return err
	}
	cp, err := s.Run(nil, s.Linkerd(), cx, "install",
		"--identity-trust-anchors-file", anchor,
		"--identity-issuer-certificate-file", issuerCrt,
		"--identity-issuer-key-file", issuerKey)
	if err != nil {
		return err
	}
	if _, err := s.Run([]byte(cp), s.Kubectl(), cx, "apply", "-f", "-"); err != nil {
		return err
	}
	if _, err := s.Run(nil, s.Linkerd(), cx, "check", "--wait", "6m"); err != nil {
		return err
	}
	mc, err := s.Run(nil, s.Linkerd(), cx, "multicluster", "install")
	if err != nil {
		return err
	}
	if _, err := s.Run([]byte(mc), s.Kubectl(), cx, "apply", "-f", "-"); err != nil {
		return err
	}
	if _, err := s.Run(nil, s.Kubectl(), cx, "-n", "linkerd-multicluster", "rollout", "status", "deploy/linkerd-gateway", "--timeout=5m"); err != nil {
		return err
	}
	c := s.cluster(ctxName)
	return poll(s.Ctx, 2*time.Minute, func() error {
		svc, err := c.Client().CoreV1().Services("linkerd-multicluster").Get(s.Ctx, "linkerd-gateway", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("the gateway Service of %s has no load-balancer address yet", ctxName)
		}
		return nil
	})
}

// mergeKubeconfigs writes one kubeconfig at path whose contexts are the keys of files,
// each the current context of the kubeconfig file it names, as `kubectl config view
// --flatten` of KUBECONFIG=a:b gives once the contexts are renamed.
func mergeKubeconfigs(path string, files map[string]string) error {
	out := clientcmdapi.NewConfig()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cfg, err := clientcmd.LoadFromFile(files[name])
		if err != nil {
			return fmt.Errorf("reading the kubeconfig of %s: %w", name, err)
		}
		cur := cfg.Contexts[cfg.CurrentContext]
		if cur == nil {
			return fmt.Errorf("the kubeconfig of %s (%s) has no current context", name, files[name])
		}
		out.Clusters[name] = cfg.Clusters[cur.Cluster]
		out.AuthInfos[name] = cfg.AuthInfos[cur.AuthInfo]
		out.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: cur.Namespace}
	}
	out.CurrentContext = names[0]
	if err := clientcmd.WriteToFile(*out, path); err != nil {
		return fmt.Errorf("writing the merged kubeconfig: %w", err)
	}
	return nil
}

// cluster is the cluster of context name.
func (s *Suite) cluster(name string) *localcluster.Cluster {
	if name == "east" {
		return s.East
	}
	return s.West
}

// Client is the admin clientset of context name.
func (s *Suite) Client(name string) kubernetes.Interface { return s.cluster(name).Client() }

// Linkerd is the path of our linkerd CLI; Kubectl that of kubectl.
func (s *Suite) Linkerd() string { return filepath.Join(s.Root, "bin", "linkerd") }

// Kubectl is the path of the kubectl binary from the test substrate.
func (s *Suite) Kubectl() string { return filepath.Join(kube.BinDir(), "kubectl") }

// Run runs a command on the host with the two-context kubeconfig and stdin, returning
// its stdout, or an error carrying its output.
func (s *Suite) Run(stdin []byte, name string, args ...string) (string, error) {
	return s.run(nil, s.Kubeconfig, stdin, name, args...)
}

// RunOnNode runs a command in west's node namespace, as on a machine that reaches both
// clusters' API servers at their node addresses (commands that use a Link's credentials,
// such as `linkerd multicluster check`, reach the linked API server at the address the
// Link names, which only the clusters' networks route).
func (s *Suite) RunOnNode(name string, args ...string) (string, error) {
	return s.run(s.West.Network().Node, s.NodeKubeconfig, nil, name, args...)
}

func (s *Suite) run(in *netns.Namespace, kubeconfig string, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(s.Ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var err error
	if in == nil {
		err = cmd.Run()
	} else {
		err = in.Run(cmd)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s\n%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
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

// Apply applies YAML manifests to the cluster of context ctxName.
func (s *Suite) Apply(t *testing.T, ctxName, yaml string) {
	t.Helper()
	s.MustRun(t, []byte(yaml), s.Kubectl(), "--context="+ctxName, "apply", "-f", "-")
}

// Namespace creates a meshed namespace in the cluster of context ctxName and deletes it
// when t ends.
func (s *Suite) Namespace(t *testing.T, ctxName, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"linkerd.io/inject": "enabled"}}}
	if _, err := s.Client(ctxName).CoreV1().Namespaces().Create(s.Ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s in %s: %v", name, ctxName, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpFiles(os.Stdout, s.podLogs(ctxName, name))
		}
		_ = s.Client(ctxName).CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// Eventually polls cond every second until it returns "" (done) or within passes; then
// it fails t with the last reason cond gave.
func (s *Suite) Eventually(t *testing.T, within time.Duration, what string, cond func() string) {
	t.Helper()
	err := poll(s.Ctx, within, func() error {
		if why := cond(); why != "" {
			return errors.New(why)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: not after %v: %v", what, within, err)
	}
}

// poll calls f every second until it returns nil or within passes, and returns its last
// error then.
func poll(ctx context.Context, within time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second): // poll interval
		}
	}
}

// podLogs are the container log files of the pods of namespace ns (a glob) in the
// cluster of context ctxName.
func (s *Suite) podLogs(ctxName, ns string) []string {
	logs, _ := filepath.Glob(filepath.Join(s.cluster(ctxName).RunDir(), "pods", ns+"_*", "logs", "*.log"))
	return logs
}

// dumpLogs writes the tail of every container log and both clusters' logs.
func (s *Suite) dumpLogs(w io.Writer) {
	for _, name := range []string{"west", "east"} {
		c := s.cluster(name)
		if c == nil {
			continue
		}
		s.dumpFiles(w, append(s.podLogs(name, "*"), filepath.Join(c.RunDir(), "cluster.log")))
	}
}

func (s *Suite) dumpFiles(w io.Writer, logs []string) {
	sort.Strings(logs)
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
