package check

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/cli/mcext"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestMulticlusterCheck runs `linkerd multicluster check`'s checks against a control plane
// of its own (the extension's cluster-scoped objects stay out of the other tests' way):
// before the install, with the extension and a Link whose credentials work (no service
// mirror pod runs: there is no kubelet), and with a Link whose credentials do not.
func TestMulticlusterCheck(t *testing.T) {
	kube.Shared(t) // skips with L5D_SKIP_KUBE=1
	c, err := kube.Start(kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx := context.Background()
	table := func(rep Report) string {
		var b bytes.Buffer
		WriteTable(&b, rep)
		return b.String()
	}

	rep := RunMulticluster(ctx, c.Client(), c.Dynamic(), MulticlusterOptions{})
	if rep.Success || !strings.Contains(table(rep), "linkerd multicluster install") {
		t.Fatalf("before the install:\n%s", table(rep))
	}

	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
	manifest, err := mcext.Render(mcext.Options{Gateway: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(manifest))
	c.WaitCRD(t, "links.multicluster.linkerd.io")
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.WriteKubeconfig(kc, c.Host()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	link := func(name string, kubeconfig []byte) {
		if _, err := c.Client().CoreV1().Secrets(mc.Namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-credentials-" + name}, Type: mc.CredentialsSecretType,
			Data: map[string][]byte{mc.CredentialsKey: kubeconfig}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.Apply(t, mc.Namespace, `apiVersion: multicluster.linkerd.io/v1alpha3
kind: Link
metadata: {name: `+name+`}
spec: {targetClusterName: `+name+`, clusterCredentialsSecret: cluster-credentials-`+name+`, gatewayAddress: 192.0.2.9, gatewayIdentity: gw}
`)
	}
	link("east", data)
	rep = RunMulticluster(ctx, c.Client(), c.Dynamic(), MulticlusterOptions{})
	got := results(rep)
	for name, want := range map[string]string{
		"Link CRD exists":                               "success",
		"the multicluster namespace exists":             "success",
		"Link resources are valid":                      "success",
		"remote cluster access credentials are valid":   "success",
		"service mirror controllers are running":        "error",
		"all gateway mirrors are healthy":               "error",
		"all mirror services are in step (Link status)": "success",
	} {
		if got["linkerd-multicluster/"+name] != want {
			t.Errorf("%q: %s, want %s\n%s", name, got["linkerd-multicluster/"+name], want, table(rep))
		}
	}
	if s := table(rep); !strings.Contains(s, "controller-east") || !strings.Contains(s, "no running service mirror pod") {
		t.Errorf("the failures do not name the missing service mirror:\n%s", s)
	}

	// The service mirror reports a Service it could not mirror in the Link's status.
	status := `{"status":{"mirrorServices":[{"controllerName":"linkerd.io/service-mirror","remoteRef":{"kind":"Service","name":"books","namespace":"shop"},` +
		`"conditions":[{"type":"Mirrored","status":"False","reason":"MissingNamespace","message":"the namespace does not exist in this cluster","localRef":{"kind":"Service","name":"books-east","namespace":"shop"}}]}]}}`
	if _, err := c.Dynamic().Resource(mc.Links).Namespace(mc.Namespace).Patch(ctx, "east", types.MergePatchType, []byte(status), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	rep = RunMulticluster(ctx, c.Client(), c.Dynamic(), MulticlusterOptions{})
	if got := results(rep)["linkerd-multicluster/all mirror services are in step (Link status)"]; got != "error" ||
		!strings.Contains(table(rep), "shop/books is not mirrored (MissingNamespace)") {
		t.Errorf("a Link status with a failed mirror: %s\n%s", got, table(rep))
	}

	link("north", []byte("not a kubeconfig"))
	rep = RunMulticluster(ctx, c.Client(), c.Dynamic(), MulticlusterOptions{})
	if got := results(rep)["linkerd-multicluster/remote cluster access credentials are valid"]; got != "error" ||
		!strings.Contains(table(rep), "cluster-credentials-north") {
		t.Errorf("bad credentials: %s\n%s", got, table(rep))
	}
}
