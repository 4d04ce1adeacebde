package servicemirror

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/test/kube"
)

// linkCRD is the chart's Link CRD, applied as it is.
const linkCRD = "../../deploy/charts/linkerd-multicluster/templates/link-crd.yaml"

// TestLinkRunner drives the service mirror the way its Deployment does: a Link and its
// credentials Secret in the local cluster (the Secret applied after the Link), mirrors
// made through them, a spec change picked up, and every mirror deleted with the Link.
func TestLinkRunner(t *testing.T) {
	lc := link(t)
	local := kube.Shared(t)
	crd, err := os.ReadFile(linkCRD)
	if err != nil {
		t.Fatal(err)
	}
	local.Apply(t, "", string(crd))
	local.WaitCRD(t, "links.multicluster.linkerd.io")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if _, err := lc.remote.CoreV1().Services(lc.ns).Create(ctx, service(lc.ns, "catalog", "true", 8080), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	linkNS := local.Namespace(t)
	name := "east-" + lc.ns[len(lc.ns)-5:] // a cluster name no other test uses
	local.Apply(t, linkNS, fmt.Sprintf(`apiVersion: multicluster.linkerd.io/v1alpha3
kind: Link
metadata: {name: %[1]s}
spec:
  targetClusterName: %[1]s
  clusterCredentialsSecret: cluster-credentials-%[1]s
  gatewayAddress: 192.0.2.76
  gatewayPort: "4143"
  gatewayIdentity: linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local
  probeSpec: {path: /ready, port: "4191", period: 1s}
  selector: {matchLabels: {mirror.linkerd.io/exported: "true"}}
  remoteDiscoverySelector: {matchLabels: {mirror.linkerd.io/exported: remote-discovery}}
`, name))

	// The gateway: a loopback HTTP server answering the probes, which the probe client
	// reaches whatever address the Link names (no traffic leaves loopback).
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
		}
	}))
	defer gw.Close()
	var probed sync.Map
	probeClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			probed.Store(addr, true)
			return (&net.Dialer{}).DialContext(ctx, network, gw.Listener.Addr().String())
		}}}
	r := &LinkRunner{Name: name, Namespace: linkNS, Local: lc.local, Dynamic: local.Dynamic(),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), ProbeClient: probeClient}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := lc.remoteCluster.WriteKubeconfig(kubeconfig, "https://"+lc.relay.addr); err != nil {
		t.Fatal(err)
	}
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.local.CoreV1().Secrets(linkNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-credentials-" + name},
		Type:       mc.CredentialsSecretType,
		Data:       map[string][]byte{mc.CredentialsKey: kc},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mirror := "catalog-" + name
	eventually(t, "mirror through the Link's credentials, ready once the gateway is probed", func() error {
		_, ep, err := lc.mirror(mirror)
		if err != nil {
			return err
		}
		if ep == nil || len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].IP != "192.0.2.76" {
			return fmt.Errorf("endpoints %+v", ep)
		}
		return nil
	})
	if _, ok := probed.Load("192.0.2.76:4191"); !ok {
		t.Error("the probe did not address the Link's gateway and probe port")
	}
	eventually(t, "running", func() error {
		if !r.Running() {
			return fmt.Errorf("not running")
		}
		return nil
	})

	t.Run("status", func(t *testing.T) {
		// A Service exported from a namespace this cluster lacks cannot be mirrored.
		missing := "missing-" + lc.ns[len(lc.ns)-5:]
		if _, err := lc.remote.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: missing}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = lc.remote.CoreV1().Namespaces().Delete(context.Background(), missing, metav1.DeleteOptions{})
		})
		if _, err := lc.remote.CoreV1().Services(missing).Create(ctx, service(missing, "ratings", "true", 8080), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{lc.ns + "/catalog": "True/Mirrored", missing + "/ratings": "False/MissingNamespace"}
		eventually(t, "the Link's status", func() error {
			return linkStatusIs(ctx, local, linkNS, name, want)
		})
		// Unexported: its entry goes.
		if err := lc.remote.CoreV1().Services(missing).Delete(ctx, "ratings", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		delete(want, missing+"/ratings")
		eventually(t, "the Link's status without the deleted Service", func() error {
			return linkStatusIs(ctx, local, linkNS, name, want)
		})
	})

	t.Run("spec change", func(t *testing.T) {
		res := local.Dynamic().Resource(mc.Links).Namespace(linkNS)
		u, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(u.Object, "192.0.2.77", "spec", "gatewayAddress"); err != nil {
			t.Fatal(err)
		}
		if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "endpoints at the new gateway", func() error {
			_, ep, err := lc.mirror(mirror)
			if err != nil || ep == nil {
				return fmt.Errorf("endpoints: %v", err)
			}
			if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].IP != "192.0.2.77" {
				return fmt.Errorf("subsets %+v", ep.Subsets)
			}
			return nil
		})
	})

	t.Run("unlink deletes the mirrors", func(t *testing.T) {
		if err := local.Dynamic().Resource(mc.Links).Namespace(linkNS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "mirror deleted", lc.gone(mirror))
	})
}

// linkStatusIs checks that Link ns/name's status.mirrorServices holds exactly the remote
// Services of want ("ns/name"), each with a Mirrored condition "Status/Reason".
func linkStatusIs(ctx context.Context, local *kube.Cluster, ns, name string, want map[string]string) error {
	u, err := local.Dynamic().Resource(mc.Links).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var l mc.Link
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &l); err != nil {
		return err
	}
	if l.Status == nil {
		return fmt.Errorf("no status yet")
	}
	got := map[string]string{}
	for _, s := range l.Status.MirrorServices {
		if s.ControllerName != mc.StatusControllerName || s.RemoteRef.Kind != "Service" || len(s.Conditions) != 1 {
			return fmt.Errorf("malformed entry %+v", s)
		}
		c := s.Conditions[0]
		if c.Type != mc.ConditionMirrored || c.LocalRef.Name != s.RemoteRef.Name+"-"+l.Spec.TargetClusterName || c.LastTransitionTime.IsZero() {
			return fmt.Errorf("malformed condition %+v", c)
		}
		got[s.RemoteRef.Namespace+"/"+s.RemoteRef.Name] = string(c.Status) + "/" + c.Reason
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("status.mirrorServices %v, want %v", got, want)
	}
	return nil
}
