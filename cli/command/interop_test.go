package command

import (
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestManualInjectUsesTheInstalledConfiguration: linkerd inject --manual injects as the
// installed control plane's webhook does (its linkerd-config: images, versions, proxy
// settings), and offline (--identity-trust-anchors-file) as `linkerd install` at the CLI's
// version would: l5d's images tagged with that version, never Linkerd's hard-coded ones.
func TestManualInjectUsesTheInstalledConfiguration(t *testing.T) {
	c := kube.Shared(t)
	const ns = "l5d-manual-installed"
	cp, _, err := run(t, "", "install", "-L", ns, "--set", "imageRegistry=registry.example/mesh,linkerdVersion=v7.7.7,proxy.logLevel=debug,proxy.uid=2200,clusterNetworks=10.9.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, cp)
	out, errOut, err := run(t, "", "inject", "--manual", "-L", ns, "--kubeconfig", c.Kubeconfig(), "testdata/workloads.yaml")
	if err != nil {
		t.Fatalf("inject --manual: %v\n%s", err, errOut)
	}
	for _, want := range []string{
		"image: registry.example/mesh/proxy:v7.7.7", "image: registry.example/mesh/proxy-init:v7.7.7",
		"linkerd.io/proxy-version: v7.7.7", "value: debug", "runAsUser: 2200", "value: 10.9.0.0/16",
		"linkerd-dst-headless." + ns + ".svc.cluster.local.:8086",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inject --manual against the installed control plane lacks %q", want)
		}
	}
	if strings.Contains(out, "cr.l5d.io/linkerd/proxy") || strings.Contains(out, "stable-2.12.2") {
		t.Error("inject --manual writes Linkerd's images or version instead of the installed ones")
	}

	defer func(v string) { Version = v }(Version)
	Version = "v8.8.8"
	out, errOut, err = run(t, "", "inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem", "testdata/workloads.yaml")
	if err != nil {
		t.Fatalf("inject --manual offline: %v\n%s", err, errOut)
	}
	for _, want := range []string{"image: ghcr.io/l5d-go/proxy:v8.8.8", "image: ghcr.io/l5d-go/proxy-init:v8.8.8", "linkerd.io/created-by: linkerd/cli v8.8.8"} {
		if !strings.Contains(out, want) {
			t.Errorf("inject --manual offline lacks %q", want)
		}
	}
}

// TestInstallNotesMissingGatewayAPI: `linkerd install` against a cluster without the
// Gateway API CRDs says so on stderr (the manifests on stdout are unchanged).
func TestInstallNotesMissingGatewayAPI(t *testing.T) {
	c := kube.Shared(t)
	_, errOut, err := run(t, "", "install", "--crds", "--kubeconfig", c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	missing := !strings.Contains(errOut, "Gateway API CRDs are not installed")
	if _, err := c.Dynamic().Resource(crdGVR).Get(t.Context(), "httproutes.gateway.networking.k8s.io", metav1.GetOptions{}); err == nil {
		if !missing {
			t.Errorf("install notes missing Gateway API CRDs although they are installed:\n%s", errOut)
		}
		return
	}
	if missing {
		t.Errorf("install --crds against a cluster without the Gateway API CRDs does not say so:\n%s", errOut)
	}
}
