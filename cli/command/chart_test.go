package command

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// chartsDir holds one directory per Helm chart; every one of them is checked.
const chartsDir = "../../deploy/charts"

// helmKubeVersion is the Kubernetes version Helm renders and lints for (the local cluster's).
const helmKubeVersion = "v1.34.0"

// helmFlags are the value flags of a helm command: "{dir}" in a path is the directory of
// the generated certificates, "{chart}" the chart's directory.
type helmFlags struct {
	files, sets, setFiles []string // -f, --set, --set-file
}

// args returns the flags.
func (v helmFlags) args(dir, chartDir string) []string {
	r := strings.NewReplacer("{dir}", dir, "{chart}", chartDir)
	var out []string
	for _, f := range v.files {
		out = append(out, "-f", r.Replace(f))
	}
	for _, s := range v.sets {
		out = append(out, "--set", s)
	}
	for _, s := range v.setFiles {
		out = append(out, "--set-file", r.Replace(s))
	}
	return out
}

// chartCase is one `linkerd` invocation and the Helm values a Helm user gives for the same
// install.
type chartCase struct {
	name string
	// cli are the arguments of the linkerd command; "{dir}" is the directory of the
	// generated certificates.
	cli []string
	// helm are the values as `helm install` takes them.
	helm helmFlags
	// namespace is the release namespace the linkerd command renders into (default linkerd).
	namespace string
}

// testCLIVersion stands for the CLI's build version in the renders.
const testCLIVersion = "v9.9.9-test"

// identityFlags are the certificate flags of `linkerd install` with the generated files.
var identityFlags = []string{
	"--identity-trust-anchors-file", "{dir}/" + certs.TrustAnchorFile,
	"--identity-issuer-certificate-file", "{dir}/" + certs.IssuerCertFile,
	"--identity-issuer-key-file", "{dir}/" + certs.IssuerKeyFile,
}

// withIdentity returns the install command's arguments followed by more.
func withIdentity(cmd []string, more ...string) []string {
	return append(append(append([]string{}, cmd...), identityFlags...), more...)
}

// helmSetFiles are the --set-file flags of a Helm install with the generated certificates.
var helmSetFiles = []string{
	"identityTrustAnchorsPEM={dir}/" + certs.TrustAnchorFile,
	"identity.issuer.tls.crtPEM={dir}/" + certs.IssuerCertFile,
	"identity.issuer.tls.keyPEM={dir}/" + certs.IssuerKeyFile,
}

// chartCases maps each chart to its `linkerd` counterparts. A chart added under
// deploy/charts must get a row here, naming the CLI command that renders it.
var chartCases = map[string][]chartCase{
	"linkerd-crds": {{name: "crds", cli: []string{"install", "--crds"}}},
	"linkerd2-cni": {
		{name: "install-cni", cli: []string{"install-cni"}, namespace: "linkerd-cni", helm: helmFlags{sets: []string{"linkerdVersion=" + testCLIVersion}}},
		{
			name:      "install-cni-flags",
			cli:       []string{"install-cni", "--dest-cni-net-dir", "/etc/kubernetes/cni/net.d", "--skip-inbound-ports", "9000,9100-9110", "--iptables-mode", "nft", "--use-wait-flag"},
			namespace: "linkerd-cni",
			helm: helmFlags{sets: []string{
				"linkerdVersion=" + testCLIVersion, "destCNINetDir=/etc/kubernetes/cni/net.d",
				"ignoreInboundPorts=9000\\,9100-9110", "iptablesMode=nft", "useWaitFlag=true",
			}},
		},
	},
	"linkerd-control-plane": {
		{
			// The Helm commands of the seeds: the namespace comes from --create-namespace.
			name: "book",
			cli:  withIdentity([]string{"install"}, "--set", "installNamespace=false"),
			helm: helmFlags{setFiles: helmSetFiles, sets: []string{"linkerdVersion=" + testCLIVersion}},
		},
		{
			name: "same-values",
			cli:  withIdentity([]string{"install"}, "--set", "proxy.defaultInboundPolicy=all-authenticated"),
			helm: helmFlags{setFiles: helmSetFiles, sets: []string{
				"installNamespace=true", "linkerdVersion=" + testCLIVersion, "proxy.defaultInboundPolicy=all-authenticated",
			}},
		},
		{
			name: "cni-enabled",
			cli:  withIdentity([]string{"install", "--linkerd-cni-enabled"}),
			helm: helmFlags{setFiles: helmSetFiles, sets: []string{"installNamespace=true", "linkerdVersion=" + testCLIVersion, "cniEnabled=true"}},
		},
		{
			name: "ha",
			cli:  withIdentity([]string{"install", "--ha"}),
			helm: helmFlags{
				files:    []string{"{chart}/values-ha.yaml"},
				setFiles: helmSetFiles,
				sets:     []string{"installNamespace=true", "linkerdVersion=" + testCLIVersion},
			},
		},
	},
	// The multicluster extension in its own namespace, with and without its gateway.
	"linkerd-multicluster": {
		{
			name:      "helm-namespace",
			cli:       []string{"multicluster", "install", "--ignore-cluster", "--set", "installNamespace=false"},
			helm:      helmFlags{sets: []string{"linkerdVersion=" + testCLIVersion}},
			namespace: "linkerd-multicluster",
		},
		{
			name:      "pod-to-pod",
			cli:       []string{"multicluster", "install", "--ignore-cluster", "--gateway=false"},
			helm:      helmFlags{sets: []string{"installNamespace=true", "linkerdVersion=" + testCLIVersion, "gateway.enabled=false"}},
			namespace: "linkerd-multicluster",
		},
	},
	// The viz extension in its own namespace; --ignore-cluster renders the defaults a Helm
	// user gets (no control plane to read settings from).
	"linkerd-viz": {
		{
			name:      "helm-namespace",
			cli:       []string{"viz", "install", "--ignore-cluster", "--set", "installNamespace=false"},
			helm:      helmFlags{sets: []string{"linkerdVersion=" + testCLIVersion}},
			namespace: "linkerd-viz",
		},
		{
			name:      "same-values",
			cli:       []string{"viz", "install", "--ignore-cluster", "--set", "prometheus.args.storage\\.tsdb\\.retention\\.time=2h"},
			helm:      helmFlags{sets: []string{"installNamespace=true", "linkerdVersion=" + testCLIVersion, "prometheus.args.storage\\.tsdb\\.retention\\.time=2h"}},
			namespace: "linkerd-viz",
		},
	},
	"linkerd-jaeger": {
		{
			name:      "helm-namespace",
			cli:       []string{"jaeger", "install", "--ignore-cluster", "--set", "installNamespace=false"},
			helm:      helmFlags{sets: []string{"linkerdVersion=" + testCLIVersion}},
			namespace: "linkerd-jaeger",
		},
		{
			name:      "same-values",
			cli:       []string{"jaeger", "install", "--ignore-cluster", "--set", "webhook.failurePolicy=Fail"},
			helm:      helmFlags{sets: []string{"installNamespace=true", "linkerdVersion=" + testCLIVersion, "webhook.failurePolicy=Fail"}},
			namespace: "linkerd-jaeger",
		},
	},
}

// TestChartsMatchInstall checks every chart under deploy/charts with the pinned helm CLI
// (make helm), reading the chart's directory: `helm lint --strict` finds nothing, and the
// objects `helm template` renders are those the linkerd command (`linkerd install`, built
// as testCLIVersion) prints for the same values, field by field, apart from the key material
// each render generates afresh (the webhooks' certificates).
func TestChartsMatchInstall(t *testing.T) {
	helm := helmBinary(t)
	defer func(v string) { Version = v }(Version)
	Version = testCLIVersion
	entries, err := os.ReadDir(chartsDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := certs.WriteIdentityFiles(dir, "cluster.local", certs.ValidFor(time.Now(), 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		seen++
		chartDir := filepath.Join(chartsDir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			rows, ok := chartCases[e.Name()]
			if !ok {
				t.Fatalf("chart %s has no `linkerd` counterpart in this test's cases: add the command that renders it", e.Name())
			}
			for _, tc := range rows {
				t.Run(tc.name, func(t *testing.T) {
					args := tc.helm.args(dir, chartDir)
					ns := tc.namespace
					if ns == "" {
						ns = "linkerd"
					}
					helmLint(t, helm, chartDir, ns, args)
					got := manifestObjects(t, helmTemplate(t, helm, chartDir, ns, args))
					cli := make([]string, len(tc.cli))
					for i, a := range tc.cli {
						cli[i] = strings.ReplaceAll(a, "{dir}", dir)
					}
					want := manifestObjects(t, runLinkerd(t, cli))
					generated := volatileFields(want, manifestObjects(t, runLinkerd(t, cli)))
					compareObjects(t, got, want, generated)
				})
			}
		})
	}
	if seen < 2 {
		t.Fatalf("found %d charts under %s", seen, chartsDir)
	}
}

// helmBinary returns the pinned helm CLI: $L5D_HELM, or bin/tools/helm (make helm).
func helmBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("L5D_HELM")
	if p == "" {
		p = filepath.Join("..", "..", "bin", "tools", "helm")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the helm CLI is missing (%v): build it with `make helm` at the repository root, or point L5D_HELM at it", err)
	}
	return p
}

// runHelm runs the helm CLI with args and returns its standard output.
func runHelm(t *testing.T, helm string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// helmLint fails t on any warning or error of `helm lint --strict` (the run fails on either).
func helmLint(t *testing.T, helm, chartDir, ns string, values []string) {
	t.Helper()
	out := runHelm(t, helm, append([]string{"lint", "--strict", "-n", ns, "--kube-version", helmKubeVersion, chartDir}, values...)...)
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint %s:\n%s", chartDir, out)
	}
}

// helmTemplate renders the chart directory as a release named after it in namespace ns.
func helmTemplate(t *testing.T, helm, chartDir, ns string, values []string) string {
	t.Helper()
	return runHelm(t, helm, append([]string{"template", filepath.Base(chartDir), chartDir, "-n", ns, "--kube-version", helmKubeVersion}, values...)...)
}

// runLinkerd runs the linkerd command with args and returns what it prints on stdout.
func runLinkerd(t *testing.T, args []string) string {
	t.Helper()
	out, errOut, err := run(t, "", args...)
	if err != nil {
		t.Fatalf("linkerd %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// manifestObjects splits a manifest stream into its objects, each flattened to its
// leaves ("spec.template.spec.containers.0.image" -> value), keyed Kind/namespace/name.
func manifestObjects(t *testing.T, manifest string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		key := fmt.Sprintf("%v/%v/%v", o["kind"], md["namespace"], md["name"])
		if md["namespace"] == nil {
			key = fmt.Sprintf("%v//%v", o["kind"], md["name"])
		}
		if _, dup := out[key]; dup {
			t.Errorf("%s rendered twice", key)
		}
		leaves := map[string]string{}
		flattenYAML("", o, leaves)
		out[key] = leaves
	}
	return out
}

func flattenYAML(prefix string, v any, into map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			flattenYAML(prefix+"."+k, x, into)
		}
	case []any:
		for i, x := range v {
			flattenYAML(fmt.Sprintf("%s.%d", prefix, i), x, into)
		}
	default:
		into[prefix] = fmt.Sprint(v)
	}
}

// volatileFields returns the fields (object key + field path) that differ between two
// renders of the same values: what the chart generates afresh on every render.
func volatileFields(a, b map[string]map[string]string) map[string]bool {
	out := map[string]bool{}
	for k, fa := range a {
		for p, x := range fa {
			if b[k][p] != x {
				out[k+" "+p] = true
			}
		}
	}
	return out
}

// compareObjects reports objects or fields Helm and the CLI render differently.
func compareObjects(t *testing.T, helm, cli map[string]map[string]string, generated map[string]bool) {
	t.Helper()
	if h, c := sortedKeys(helm), sortedKeys(cli); !reflect.DeepEqual(h, c) {
		t.Errorf("objects differ:\nhelm template: %v\nlinkerd install: %v", h, c)
	}
	if len(helm) == 0 {
		t.Error("helm renders no object")
	}
	diffs := 0
	for _, k := range sortedKeys(cli) {
		h, c := helm[k], cli[k]
		if h == nil {
			continue
		}
		for _, p := range unionKeys(h, c) {
			if generated[k+" "+p] || h[p] == c[p] {
				continue
			}
			if diffs++; diffs <= 20 {
				t.Errorf("%s %s: helm template %q, linkerd %q", k, p, h[p], c[p])
			}
		}
	}
	if diffs > 20 {
		t.Errorf("... %d differences in all", diffs)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func unionKeys(a, b map[string]string) []string {
	out := sortedKeys(a)
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}
