package install

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/test/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// dryRunApply server-side applies every object of a rendered stream with dryRun=All and
// fails the test naming each object the API server rejects.
func dryRunApply(t *testing.T, c *kube.Cluster, stream []byte) int {
	t.Helper()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client().Discovery()))
	n := 0
	for _, doc := range strings.Split(string(stream), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("not YAML: %v", err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: the API server does not serve this kind: %v", gvk.Kind, u.GetName(), err)
			continue
		}
		body, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		ri := c.Dynamic().Resource(mapping.Resource)
		opts := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "linkerd-test", Force: ptr(true)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if u.GetNamespace() != "" {
			_, err = ri.Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts)
		} else {
			_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts)
		}
		cancel()
		if err != nil {
			t.Errorf("API server rejects %s %s/%s: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
		n++
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// TestRenderedObjectsAcceptedByAPIServer renders the CRDs and the control plane (default
// and HA) and has the real kube-apiserver validate every object with a server-side
// dry-run apply.
func TestRenderedObjectsAcceptedByAPIServer(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	var notes bytes.Buffer
	crds, err := Render(Options{CRDs: true}, &notes)
	if err != nil {
		t.Fatal(err)
	}
	if got := dryRunApply(t, c, crds); got == 0 {
		t.Fatal("the CRD chart rendered no objects")
	}
	for _, ha := range []bool{false, true} {
		out, err := Render(Options{Namespace: ns, HA: ha, Sets: []string{"proxy.logLevel=debug"}}, &notes)
		if err != nil {
			t.Fatal(err)
		}
		if got := dryRunApply(t, c, out); got < 30 {
			t.Errorf("ha=%v: only %d objects rendered", ha, got)
		}
	}
	if !strings.Contains(notes.String(), "private key is not saved") {
		t.Errorf("install did not say the anchor key is not kept: %q", notes.String())
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCertificateFiles checks the --identity-* flags: given files end up in the values,
// and inconsistent sets are refused with a message naming the problem.
func TestCertificateFiles(t *testing.T) {
	now := time.Now()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, time.Hour*24*90))
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(now, time.Hour*24*30))
	if err != nil {
		t.Fatal(err)
	}
	other, err := certs.NewTrustAnchor("other", certs.ValidFor(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := certs.EncodePrivateKeyPEM(issuer.Key)
	otherKey, _ := certs.EncodePrivateKeyPEM(other.Key)
	anchorsPEM := certs.EncodeCertificatesPEM(anchor.Cert)
	ta := writeFile(t, "ca.crt", anchorsPEM)
	ic := writeFile(t, "issuer.crt", certs.EncodeCertificatesPEM(issuer.Cert))
	ik := writeFile(t, "issuer.key", keyPEM)

	v, err := Values(Options{TrustAnchorsFile: ta, IssuerCertFile: ic, IssuerKeyFile: ik}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v["identityTrustAnchorsPEM"] != string(anchorsPEM) {
		t.Error("trust anchors file not used")
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"partial", Options{TrustAnchorsFile: ta}, "must be given together"},
		{"missing file", Options{TrustAnchorsFile: ta + ".nope", IssuerCertFile: ic, IssuerKeyFile: ik}, "--identity-trust-anchors-file"},
		{"garbage anchors", Options{TrustAnchorsFile: writeFile(t, "g", []byte("nope")), IssuerCertFile: ic, IssuerKeyFile: ik}, "--identity-trust-anchors-file"},
		{"wrong key", Options{TrustAnchorsFile: ta, IssuerCertFile: ic, IssuerKeyFile: writeFile(t, "k", otherKey)}, "do not match"},
		{"wrong anchor", Options{TrustAnchorsFile: writeFile(t, "a", certs.EncodeCertificatesPEM(other.Cert)), IssuerCertFile: ic, IssuerKeyFile: ik}, "not signed by the trust anchors"},
		{"bad set", Options{Sets: []string{"a[=b"}}, "--set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Values(tc.o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
