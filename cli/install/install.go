// Package install builds the Helm values of `linkerd install` (trust anchor and issuer,
// --ha, --set) and renders the embedded charts from the deploy module.
package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/l5d-go/l5d/deploy"
	"github.com/l5d-go/l5d/pkg/certs"
	"helm.sh/helm/v3/pkg/chartutil"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Lifetime of the trust anchor and issuer `linkerd install` generates.
const Lifetime = 365 * 24 * time.Hour

// Options are the flags of `linkerd install`.
type Options struct {
	// CRDs renders the linkerd-crds chart instead of the control plane.
	CRDs bool
	// HA merges values-ha.yaml under the user's values.
	HA bool
	// ValueFiles are Helm values files (-f/--values), merged in order under the --set
	// expressions, a later file winning over an earlier one.
	ValueFiles []string
	// CNIEnabled sets cniEnabled: the linkerd-cni plugin, not linkerd-init, installs the
	// pods' redirect rules.
	CNIEnabled bool
	// Sets are Helm --set expressions (key=value[,key=value]), applied in order, last wins.
	Sets []string
	// SetStrings (--set-string) are like Sets with every value kept a string; SetFiles
	// (--set-file, key=path) set a key to the content of a file. Both apply after Sets.
	SetStrings, SetFiles []string
	// Namespace is the control-plane namespace (default linkerd).
	Namespace string
	// TrustAnchorsFile, IssuerCertFile and IssuerKeyFile name PEM files; all three or none.
	TrustAnchorsFile, IssuerCertFile, IssuerKeyFile string
	// Version is the version the CLI was built as. When set, it becomes the chart's
	// linkerdVersion (before values-ha.yaml and --set, which may override it): the control
	// plane reports it (linkerd-config's app.kubernetes.io/version), its images and the
	// proxies it injects are tagged with it, so that linkerd check finds the control plane,
	// the proxies and the CLI on one version.
	Version string
	// Now is the clock used for generated certificates (default time.Now).
	Now func() time.Time
}

// Render renders the chart selected by o to a YAML stream. When no certificate files are
// given it generates an ECDSA P-256 trust anchor and issuer valid for one year and writes a
// note to notes saying the anchor's private key is not kept anywhere.
func Render(o Options, notes io.Writer) ([]byte, error) {
	if o.CRDs {
		return deploy.Render(deploy.CRDsChart, deploy.Options{Namespace: o.Namespace})
	}
	vals, err := Values(o, notes)
	if err != nil {
		return nil, err
	}
	return deploy.Render(deploy.ControlPlaneChart, deploy.Options{Namespace: o.Namespace, Values: vals})
}

// Values returns the control-plane values of o: the identity material and installNamespace
// (the CLI renders the control-plane Namespace, which Helm users create with
// --create-namespace), then values-ha.yaml when HA is set, then the --set expressions.
func Values(o Options, notes io.Writer) (map[string]any, error) {
	anchors, crt, key, err := identityMaterial(o, notes)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{
		"installNamespace":        true,
		"identityTrustAnchorsPEM": anchors,
		"identity": map[string]any{"issuer": map[string]any{"tls": map[string]any{
			"crtPEM": crt, "keyPEM": key,
		}}},
	}
	return Overrides(vals, o)
}

// Overrides sets linkerdVersion to o.Version (when set), applies values-ha.yaml (when o.HA)
// over base, sets cniEnabled (when o.CNIEnabled) and then o's --set expressions over it, returning the merged values. base may be
// modified.
func Overrides(base map[string]any, o Options) (map[string]any, error) {
	if o.Version != "" {
		base["linkerdVersion"] = o.Version
	}
	if o.HA {
		ha, err := deploy.HAValues()
		if err != nil {
			return nil, err
		}
		base = chartutil.CoalesceTables(ha, base)
	}
	base, err := ValueOptions{Files: o.ValueFiles, Sets: o.Sets, StringSets: o.SetStrings, FileSets: o.SetFiles}.MergeInto(base)
	if err != nil {
		return nil, err
	}
	if o.CNIEnabled {
		base["cniEnabled"] = true // the explicit flag wins over values files and --set
	}
	return base, nil
}

// Format writes a rendered YAML stream as format: "yaml" (unchanged) or "json" (each object
// as indented JSON, separated by "---" lines, which kubectl apply -f accepts).
func Format(rendered []byte, format string) ([]byte, error) {
	switch format {
	case "yaml", "":
		return rendered, nil
	case "json":
	default:
		return nil, fmt.Errorf("--output must be yaml or json, not %q", format)
	}
	var out bytes.Buffer
	err := EachDocument(rendered, func(doc []byte) error {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			return nil
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("converting to JSON: %w", err)
		}
		var ind bytes.Buffer
		if err := json.Indent(&ind, j, "", "  "); err != nil {
			return err
		}
		out.WriteString("---\n")
		out.Write(ind.Bytes())
		out.WriteString("\n")
		return nil
	})
	return out.Bytes(), err
}

// EachDocument calls fn with each document of a YAML stream (such as a rendered chart), in
// order, stopping at fn's first error.
func EachDocument(stream []byte, fn func(doc []byte) error) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("splitting the rendered manifests: %w", err)
		}
		if err := fn(doc); err != nil {
			return err
		}
	}
}

// stripComments drops YAML comment lines (Helm's "# Source:" headers).
func stripComments(doc []byte) []byte {
	var out [][]byte
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// identityMaterial reads or generates the anchors PEM and the issuer certificate and key.
func identityMaterial(o Options, notes io.Writer) (anchors, crt, key string, err error) {
	given := 0
	for _, f := range []string{o.TrustAnchorsFile, o.IssuerCertFile, o.IssuerKeyFile} {
		if f != "" {
			given++
		}
	}
	switch given {
	case 0:
		return generate(o, notes)
	case 3:
		return readFiles(o)
	default:
		return "", "", "", fmt.Errorf("--identity-trust-anchors-file, --identity-issuer-certificate-file and --identity-issuer-key-file must be given together")
	}
}

func generate(o Options, notes io.Writer) (string, string, string, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	v := certs.ValidFor(now(), Lifetime)
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, v)
	if err != nil {
		return "", "", "", fmt.Errorf("generate trust anchor: %w", err)
	}
	issuer, err := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), v)
	if err != nil {
		return "", "", "", fmt.Errorf("generate issuer: %w", err)
	}
	key, err := certs.EncodePrivateKeyPEM(issuer.Key)
	if err != nil {
		return "", "", "", err
	}
	if notes != nil {
		fmt.Fprintln(notes, "Generated a trust anchor and an identity issuer valid for one year; the trust anchor's private key is not saved anywhere.")
		fmt.Fprintln(notes, "To rotate them later, install with --identity-trust-anchors-file, --identity-issuer-certificate-file and --identity-issuer-key-file.")
	}
	return string(certs.EncodeCertificatesPEM(anchor.Cert)), string(certs.EncodeCertificatesPEM(issuer.Cert)), string(key), nil
}

func readFiles(o Options) (string, string, string, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	anchorsPEM, err := os.ReadFile(o.TrustAnchorsFile)
	if err != nil {
		return "", "", "", fmt.Errorf("--identity-trust-anchors-file: %w", err)
	}
	anchors, err := certs.ParseCertificatesPEM(anchorsPEM)
	if err != nil {
		return "", "", "", fmt.Errorf("--identity-trust-anchors-file %s: %w", o.TrustAnchorsFile, err)
	}
	crtPEM, err := os.ReadFile(o.IssuerCertFile)
	if err != nil {
		return "", "", "", fmt.Errorf("--identity-issuer-certificate-file: %w", err)
	}
	leaf, inter, err := certs.DecodeChainPEM(crtPEM)
	if err != nil {
		return "", "", "", fmt.Errorf("--identity-issuer-certificate-file %s: %w", o.IssuerCertFile, err)
	}
	keyPEM, err := os.ReadFile(o.IssuerKeyFile)
	if err != nil {
		return "", "", "", fmt.Errorf("--identity-issuer-key-file: %w", err)
	}
	key, err := certs.DecodePrivateKeyPEM(keyPEM)
	if err != nil {
		return "", "", "", fmt.Errorf("--identity-issuer-key-file %s: %w", o.IssuerKeyFile, err)
	}
	if err := certs.MatchesKey(leaf, key); err != nil {
		return "", "", "", fmt.Errorf("issuer certificate and key do not match: %w", err)
	}
	if err := certs.VerifyIssuer(leaf, inter, anchors, now()); err != nil {
		return "", "", "", fmt.Errorf("issuer certificate is not signed by the trust anchors: %w", err)
	}
	return string(anchorsPEM), string(crtPEM), string(keyPEM), nil
}

// InjectorArgs renders the control plane with vals in namespace ns and returns the arguments
// of its proxy-injector container: the mesh-wide injection settings the installed webhook
// runs with (inject.ValuesFromArgs reads them). vals needs the trust anchors; the issuer
// is not needed (it is rendered as external).
func InjectorArgs(vals map[string]any, ns string) ([]string, error) {
	vals = chartutil.CoalesceTables(map[string]any{
		"identity": map[string]any{"issuer": map[string]any{"scheme": "kubernetes.io/tls"}},
	}, vals)
	out, err := deploy.Render(deploy.ControlPlaneChart, deploy.Options{Namespace: ns, Values: vals})
	if err != nil {
		return nil, err
	}
	var args []string
	err = EachDocument(out, func(doc []byte) error {
		var d struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name string   `json:"name"`
							Args []string `json:"args"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &d); err != nil || d.Kind != "Deployment" || d.Metadata.Name != "linkerd-proxy-injector" {
			return nil
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "proxy-injector" {
				args = c.Args
			}
		}
		return nil
	})
	if err == nil && args == nil {
		err = fmt.Errorf("the control-plane chart renders no proxy-injector container")
	}
	return args, err
}
