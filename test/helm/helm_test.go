// Package helm installs l5d the way a Helm user does, with the real helm CLI (make helm) and
// the charts make charts packages: TestChartPackages checks the packages themselves (same
// bytes on every run, a Helm repository index, OCI layouts of what helm push pushes);
// TestHelmLifecycle, on a local cluster of three real nodes (test/localcluster: kubelet
// and containerd, l5d's images built from bin/), installs
// linkerd-crds and linkerd-control-plane with a trust anchor and issuer of its own, runs
// linkerd check, upgrades to values-ha.yaml, checks again and uninstalls both releases,
// leaving nothing behind.
package helm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// root is the repository root, relative to this package.
const root = "../.."

// tool returns the path of a binary make builds, failing t with the make target when it is
// missing.
func tool(t *testing.T, rel, target string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: build it with `make %s` at the repository root (%v)", rel, target, err)
	}
	return p
}

// packageCharts runs the packager of make charts over deploy/charts into a new directory.
func packageCharts(t *testing.T, version string, epoch int64) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "charts")
	cmd := exec.Command(tool(t, "bin/tools/l5d-charts", "helm"), "-charts", filepath.Join(root, "deploy", "charts"),
		"-out", out, "-version", version, "-epoch", fmt.Sprint(epoch))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("l5d-charts: %v\n%s", err, b)
	}
	return out
}

// chartNames lists the charts under deploy/charts.
func chartNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "deploy", "charts"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no chart under deploy/charts")
	}
	return names
}

// TestChartPackages checks what make charts writes: two runs give the same bytes; each chart
// under deploy/charts is a package Helm reads back at the release's version, listed with its
// digest in index.yaml; and oci/<chart>/ is an OCI layout whose manifest, tagged with the
// version, carries Helm's config and chart-layer media types with the package as its layer.
func TestChartPackages(t *testing.T) {
	helm := tool(t, "bin/tools/helm", "helm")
	const release, version = "v1.2.3-4-gabcdef0", "1.2.3-4-gabcdef0"
	a, b := packageCharts(t, release, 1700000000), packageCharts(t, release, 1700000000)
	if fa, fb := tree(t, a), tree(t, b); !equalTrees(fa, fb) {
		t.Errorf("two runs of make charts differ:\n%v\n%v", keys(fa), keys(fb))
	}

	var index struct {
		Generated string `json:"generated"`
		Entries   map[string][]struct {
			Version, AppVersion, Digest string
			URLs                        []string `json:"urls"`
		} `json:"entries"`
	}
	readYAML(t, filepath.Join(a, "index.yaml"), &index)
	for _, name := range chartNames(t) {
		pkg := filepath.Join(a, fmt.Sprintf("%s-%s.tgz", name, version))
		data, err := os.ReadFile(pkg)
		if err != nil {
			t.Errorf("chart %s not packaged: %v", name, err)
			continue
		}
		sum := sha256.Sum256(data)
		e := index.Entries[name]
		if len(e) != 1 || e[0].Version != version || e[0].AppVersion != release ||
			e[0].Digest != hex.EncodeToString(sum[:]) || !slices.Equal(e[0].URLs, []string{filepath.Base(pkg)}) {
			t.Errorf("index.yaml entry of %s: %+v", name, e)
		}
		var meta struct{ Name, Version, AppVersion string }
		if err := yaml.Unmarshal([]byte(run(t, nil, helm, "show", "chart", pkg)), &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Name != name || meta.Version != version || meta.AppVersion != release {
			t.Errorf("helm show chart %s: %+v", pkg, meta)
		}
		checkOCILayout(t, filepath.Join(a, "oci", name), version, data)
	}

	// A release that is no SemVer version (a commit, a dirty tree) still makes one.
	if _, err := os.Stat(filepath.Join(packageCharts(t, "0a1b2c3-dirty", 0), "linkerd-crds-0.0.0-git-0a1b2c3-dirty.tgz")); err != nil {
		t.Error(err)
	}
	out, err := exec.Command(tool(t, "bin/tools/l5d-charts", "helm"), "-charts", filepath.Join(root, "deploy", "charts"),
		"-out", t.TempDir(), "-version", "1.0 beta").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `release version "1.0 beta"`) {
		t.Errorf("a version with a space: %v, %s; want an error naming it", err, out)
	}
}

// checkOCILayout checks that dir is an OCI image layout holding the chart package tgz as
// helm push lays it out, tagged version.
func checkOCILayout(t *testing.T, dir, version string, tgz []byte) {
	t.Helper()
	var layout struct{ ImageLayoutVersion string }
	readJSON(t, filepath.Join(dir, "oci-layout"), &layout)
	var index struct {
		Manifests []struct {
			MediaType, Digest string
			Annotations       map[string]string
		}
	}
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	if layout.ImageLayoutVersion != "1.0.0" || len(index.Manifests) != 1 ||
		index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
		t.Fatalf("%s: layout %+v, index %+v", dir, layout, index)
	}
	blob := func(digest string) string {
		return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	}
	var manifest struct {
		Config      struct{ MediaType, Digest string }
		Layers      []struct{ MediaType, Digest string }
		Annotations map[string]string
	}
	readJSON(t, blob(index.Manifests[0].Digest), &manifest)
	sum := sha256.Sum256(tgz)
	if manifest.Config.MediaType != "application/vnd.cncf.helm.config.v1+json" || len(manifest.Layers) != 1 ||
		manifest.Layers[0].MediaType != "application/vnd.cncf.helm.chart.content.v1.tar+gzip" ||
		manifest.Layers[0].Digest != "sha256:"+hex.EncodeToString(sum[:]) ||
		manifest.Annotations["org.opencontainers.image.version"] != version {
		t.Errorf("%s: manifest %+v", dir, manifest)
	}
	var config struct{ Name, Version string }
	readJSON(t, blob(manifest.Config.Digest), &config)
	if config.Version != version {
		t.Errorf("%s: config %+v", dir, config)
	}
	for _, d := range []string{index.Manifests[0].Digest, manifest.Config.Digest, manifest.Layers[0].Digest} {
		data, err := os.ReadFile(blob(d))
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(data); "sha256:"+hex.EncodeToString(s[:]) != d {
			t.Errorf("%s: blob %s does not hash to its name", dir, d)
		}
	}
}

func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func equalTrees(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

func readYAML(t *testing.T, p string, v any) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// run runs a command with env added to the environment and returns its stdout, failing t
// with its output on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(context.Background(), env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// lifecycleTimeout bounds TestHelmLifecycle: cluster start, two installs and checks, the HA
// rollout and the uninstall.
const lifecycleTimeout = 12 * time.Minute

// TestHelmLifecycle installs, checks, upgrades (the CRDs, then the control plane to HA) and
// uninstalls l5d with the helm CLI on a three-node local cluster, with the commands of
// Linkerd's Helm instructions.
func TestHelmLifecycle(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("-short")
	case os.Geteuid() != 0:
		t.Skip("needs root (network namespaces, containerd and the kubelet)")
	case os.Getenv("L5D_SKIP_KUBE") != "":
		t.Skip("L5D_SKIP_KUBE is set")
	}
	helm := tool(t, "bin/tools/helm", "helm")
	linkerd := tool(t, "bin/linkerd", "build")
	ctx, cancel := context.WithTimeout(context.Background(), lifecycleTimeout)
	defer cancel()
	start := time.Now()

	// The charts packaged at the CLI's version, as make charts packages a release: the
	// control plane then runs the version linkerd check expects, without any --set.
	version := strings.TrimPrefix(strings.TrimSpace(run(t, nil, linkerd, "version", "--client")), "Client version: ")
	charts := packageCharts(t, version, 0)
	pkg := func(name string) string {
		m, err := filepath.Glob(filepath.Join(charts, name+"-*.tgz"))
		if err != nil || len(m) != 1 {
			t.Fatalf("package of %s: %v %v", name, m, err)
		}
		return m[0]
	}
	crdsChart, cpChart := pkg("linkerd-crds"), pkg("linkerd-control-plane")

	c, runDir := startCluster(t, ctx)
	work := t.TempDir()
	certDir := filepath.Join(work, "certs")
	if _, _, err := certs.WriteIdentityFiles(certDir, "cluster.local", certs.ValidFor(time.Now(), 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"KUBECONFIG=" + c.Kubeconfig(),
		"HELM_CACHE_HOME=" + filepath.Join(work, "helm-cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(work, "helm-config"),
		"HELM_DATA_HOME=" + filepath.Join(work, "helm-data"),
	}
	step := func(what string, name string, args ...string) string {
		t.Helper()
		t0 := time.Now()
		out, err := runErr(ctx, env, name, args...)
		if err != nil {
			dumpLogs(t, runDir)
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v", what, time.Since(t0).Round(100*time.Millisecond))
		return out
	}

	step("linkerd check --pre", linkerd, "check", "--pre")
	step("helm install linkerd-crds", helm, "install", "linkerd-crds", crdsChart, "-n", "linkerd", "--create-namespace")
	notes := step("helm install linkerd-control-plane", helm, "install", "linkerd-control-plane", cpChart, "-n", "linkerd",
		"--set-file", "identityTrustAnchorsPEM="+filepath.Join(certDir, certs.TrustAnchorFile),
		"--set-file", "identity.issuer.tls.crtPEM="+filepath.Join(certDir, certs.IssuerCertFile),
		"--set-file", "identity.issuer.tls.keyPEM="+filepath.Join(certDir, certs.IssuerKeyFile))
	if !strings.Contains(notes, "control plane "+version+" is installing") || !strings.Contains(notes, "linkerd check --wait 5m\n") {
		t.Errorf("helm install prints no notes on what to do next:\n%s", notes)
	}
	step("linkerd check --proxy", linkerd, "check", "--proxy", "--wait", "5m")

	// HA with the values-ha.yaml the chart ships (helm fetch --untar, as Linkerd's docs say).
	haValues := filepath.Join(work, "values-ha.yaml")
	if err := os.WriteFile(haValues, fileInPackage(t, cpChart, "linkerd-control-plane/values-ha.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Since Linkerd 2.12 both charts are upgraded, the CRDs first.
	step("helm upgrade linkerd-crds", helm, "upgrade", "linkerd-crds", crdsChart, "-n", "linkerd")
	step("helm upgrade linkerd-control-plane -f values-ha.yaml", helm, "upgrade", "linkerd-control-plane", cpChart,
		"-n", "linkerd", "--reuse-values", "-f", haValues)
	t0 := time.Now()
	checkHA(t, ctx, c)
	t.Logf("three ready replicas per Deployment, one per node: %v", time.Since(t0).Round(100*time.Millisecond))
	step("linkerd check --proxy (HA)", linkerd, "check", "--proxy", "--wait", "5m")
	var releases []struct{ Name, Revision, Status string }
	out := step("helm list", helm, "list", "-n", "linkerd", "-o", "json")
	if err := json.Unmarshal([]byte(out), &releases); err != nil {
		t.Fatalf("helm list: %v: %s", err, out)
	}
	if len(releases) != 2 {
		t.Errorf("helm list: %s", out)
	}
	for _, r := range releases {
		if r.Revision != "2" || r.Status != "deployed" {
			t.Errorf("release %s after its upgrade: revision %s, %s", r.Name, r.Revision, r.Status)
		}
	}

	step("helm uninstall linkerd-control-plane", helm, "uninstall", "linkerd-control-plane", "-n", "linkerd", "--wait")
	step("helm uninstall linkerd-crds", helm, "uninstall", "linkerd-crds", "-n", "linkerd", "--wait")
	// --create-namespace made the namespace outside the releases; the user deletes it.
	step("kubectl delete namespace linkerd", filepath.Join(kube.BinDir(), "kubectl"), "delete", "namespace", "linkerd", "--wait=false")
	t0 = time.Now()
	nothingLeft(t, ctx, c)
	t.Logf("nothing left: %v", time.Since(t0).Round(100*time.Millisecond))
	t.Logf("whole lifecycle (cluster start included): %v", time.Since(start).Round(time.Second))
}

// startCluster starts a local cluster of three real nodes (kubelet and containerd) whose
// registry holds l5d's images built from bin/ (tagged as bin/linkerd's version, the
// charts' appVersion here) and returns it and its run directory; all go when t ends.
func startCluster(t *testing.T, ctx context.Context) (*localcluster.Cluster, string) {
	t.Helper()
	repo, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	plugins, err := exec.CommandContext(ctx, filepath.Join(repo, "tools", "cni-plugins", "build.sh")).Output()
	if err != nil {
		t.Fatalf("the standard CNI plugins (make cni-plugins): %v", err)
	}
	runDir, err := os.MkdirTemp("", "l5d-helm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("L5D_KUBE_KEEP") == "" {
			os.RemoveAll(runDir)
		}
	})
	logFile, err := os.Create(filepath.Join(runDir, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	c, err := localcluster.Up(ctx, localcluster.Options{
		RunDir: runDir, Nodes: 3, Kubelet: true, L5DImages: repo,
		CNIPlugins: strings.TrimSpace(string(plugins)),
		Logger:     slog.New(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, runDir
}

// fileInPackage returns the file named name in the chart package tgz.
func fileInPackage(t *testing.T, tgz, name string) []byte {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no %s", tgz, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// checkHA waits for every control-plane Deployment to run three ready replicas on three
// different nodes, with its PodDisruptionBudget.
func checkHA(t *testing.T, ctx context.Context, c *localcluster.Cluster) {
	t.Helper()
	cs := c.Client()
	eventually.NoErrorWithin(t, 5*time.Minute, "three ready replicas of each control-plane Deployment, one per node", func() error {
		deps, err := cs.AppsV1().Deployments("linkerd").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(deps.Items) != 3 {
			return fmt.Errorf("%d Deployments", len(deps.Items))
		}
		for _, d := range deps.Items {
			if d.Status.UpdatedReplicas != 3 || d.Status.ReadyReplicas != 3 || d.Status.Replicas != 3 {
				return fmt.Errorf("%s: %d replicas, %d updated, %d ready", d.Name, d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas)
			}
			pods, err := cs.CoreV1().Pods("linkerd").List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
			if err != nil {
				return err
			}
			nodes := map[string]bool{}
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					nodes[p.Spec.NodeName] = true
				}
			}
			if len(nodes) != 3 {
				return fmt.Errorf("%s: pods on nodes %v", d.Name, keys(nodes))
			}
			if _, err := cs.PolicyV1().PodDisruptionBudgets("linkerd").Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// nothingLeft waits until no object of any listable kind is in namespace linkerd, and no
// cluster-scoped object names linkerd or carries the linkerd.io/control-plane-ns label.
func nothingLeft(t *testing.T, ctx context.Context, c *localcluster.Cluster) {
	t.Helper()
	disc, err := discovery.NewDiscoveryClientForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	eventually.NoErrorWithin(t, 3*time.Minute, "nothing of l5d left after helm uninstall", func() error {
		lists, err := discovery.ServerPreferredResources(disc)
		if err != nil {
			return err
		}
		var left []string
		for _, l := range lists {
			gv, err := schema.ParseGroupVersion(l.GroupVersion)
			if err != nil {
				return err
			}
			for _, r := range l.APIResources {
				if !slices.Contains(r.Verbs, "list") || r.Name == "events" {
					continue
				}
				res := dyn.Resource(gv.WithResource(r.Name))
				var objs []string
				if r.Namespaced {
					list, err := res.Namespace("linkerd").List(ctx, metav1.ListOptions{})
					if err != nil {
						return fmt.Errorf("listing %s: %v", r.Name, err)
					}
					for _, o := range list.Items {
						objs = append(objs, r.Kind+" linkerd/"+o.GetName())
					}
				} else {
					list, err := res.List(ctx, metav1.ListOptions{})
					if err != nil {
						return fmt.Errorf("listing %s: %v", r.Name, err)
					}
					for _, o := range list.Items {
						if _, labelled := o.GetLabels()["linkerd.io/control-plane-ns"]; labelled || strings.Contains(o.GetName(), "linkerd") {
							objs = append(objs, r.Kind+" "+o.GetName())
						}
					}
				}
				left = append(left, objs...)
			}
		}
		if len(left) > 0 {
			sort.Strings(left)
			return errors.New("left behind: " + strings.Join(left, ", "))
		}
		return nil
	})
}

// dumpLogs prints the tail of the control plane's container logs and the cluster's log.
func dumpLogs(t *testing.T, runDir string) {
	logs := localcluster.PodLogFiles(runDir, "linkerd")
	for _, l := range append(logs, filepath.Join(runDir, "cluster.log")) {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("== %s\n%s", l, b)
	}
}
