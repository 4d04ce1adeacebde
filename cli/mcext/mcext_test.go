package mcext

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/internal/cptest"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// The controller manager's token controller fills the remote-access token Secret.
func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// TestInstallLinkUnlink installs the extension into a real API server (the target),
// generates a link from it, checks that the link's credentials authenticate as the
// remote-access ServiceAccount with its read-only rights, applies the link and its
// service mirror (the cluster links to itself), and lists what unlink deletes.
func TestInstallLinkUnlink(t *testing.T) {
	c := kube.Shared(t)
	cptest.ApplyCRDs(t, c)
	ctx := context.Background()

	manifest, err := Render(Options{Gateway: true, Version: "test"}, map[string]any{"clusterDomain": "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(manifest))
	c.WaitCRD(t, "links.multicluster.linkerd.io")
	ns := mc.Namespace
	gw, err := c.Client().CoreV1().Services(ns).Get(ctx, mc.GatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no gateway address yet", func(t *testing.T) {
		_, err := LinkGen(ctx, c.Client(), nil, LinkOptions{ClusterName: "east", Gateway: true, Server: c.Host(), CAData: c.CA()})
		if err == nil || !strings.Contains(err.Error(), "--gateway-addresses") && !strings.Contains(err.Error(), "token") {
			t.Fatalf("err = %v, want one naming --gateway-addresses (or the token not yet there)", err)
		}
	})
	t.Run("bad cluster name", func(t *testing.T) {
		if _, err := LinkGen(ctx, c.Client(), nil, LinkOptions{ClusterName: "East_1"}); err == nil || !strings.Contains(err.Error(), "DNS label") {
			t.Fatalf("err = %v", err)
		}
	})

	gw.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.50"}}
	if _, err := c.Client().CoreV1().Services(ns).UpdateStatus(ctx, gw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var out []byte
	eventually(t, "link-gen", func() error {
		out, err = LinkGen(ctx, c.Client(), map[string]any{"clusterDomain": "cluster.local"},
			LinkOptions{ClusterName: "east", Gateway: true, Server: c.Host(), CAData: c.CA(), CreatedBy: "linkerd/cli test"})
		return err
	})
	var secret, destSecret corev1.Secret
	var link mc.Link
	for _, doc := range strings.Split(string(out), "---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var u map[string]any
		if err := yaml.Unmarshal([]byte(doc), &u); err != nil {
			t.Fatal(err)
		}
		var target any = &link
		if u["kind"] == "Secret" {
			target = &secret
			if u["metadata"].(map[string]any)["namespace"] == "linkerd" {
				target = &destSecret
			}
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, target); err != nil {
			t.Fatal(err)
		}
	}
	if link.APIVersion != "multicluster.linkerd.io/v1alpha3" || secret.Name != "cluster-credentials-east" || secret.Type != mc.CredentialsSecretType {
		t.Fatalf("link %+v, secret %s (%s)", link.TypeMeta, secret.Name, secret.Type)
	}
	if destSecret.Labels[mc.LabelDestinationCluster] != "east" || destSecret.Annotations[mc.AnnTrustDomain] != "cluster.local" ||
		string(destSecret.Data[mc.CredentialsKey]) != string(secret.Data[mc.CredentialsKey]) {
		t.Errorf("the destination controller's secret: %+v", destSecret.ObjectMeta)
	}

	t.Run("the link's gateway", func(t *testing.T) {
		cfg, err := mc.Parse(&link)
		if err != nil {
			t.Fatal(err)
		}
		wantID := "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
		if cfg.GatewayAddress != "192.0.2.50" || cfg.GatewayPort != 4143 || cfg.Probe.Port != 4191 || cfg.Probe.Path != "/ready" ||
			cfg.Probe.Period != 3*time.Second || cfg.GatewayIdentity != wantID || cfg.Secret != secret.Name {
			t.Errorf("config %+v", cfg)
		}
	})

	t.Run("the credentials are the remote-access account's", func(t *testing.T) {
		rc, err := mc.RemoteConfig(&secret)
		if err != nil {
			t.Fatal(err)
		}
		remote, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("listing services with the link's credentials: %v", err)
		}
		if _, err := remote.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("listing endpointslices with the link's credentials: %v", err)
		}
		if _, err := remote.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing secrets with the link's credentials: err = %v, want forbidden", err)
		}
	})

	// Apply the link and its service mirror (link's output) to the same cluster.
	if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "linkerd"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	c.Apply(t, "", string(out))
	ctrl, err := RenderController("", "east", "test")
	if err != nil {
		t.Fatal(err)
	}
	objs := c.Apply(t, "", string(ctrl))
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	if got := strings.Join(kinds, ","); !strings.Contains(got, "Deployment/controller-east") || strings.Contains(got, "CustomResourceDefinition") {
		t.Errorf("controller objects: %s", got)
	}

	appNS := c.Namespace(t)
	mirror := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog-east", Namespace: appNS,
		Labels: map[string]string{mc.LabelMirroredService: "true", mc.LabelClusterName: "east"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}}
	if _, err := c.Client().CoreV1().Services(appNS).Create(ctx, mirror, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := mirror.DeepCopy()
	foreign.Name, foreign.Labels = "mine", map[string]string{mc.LabelClusterName: "east"}
	if _, err := c.Client().CoreV1().Services(appNS).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("gateways", func(t *testing.T) {
		gws, err := Gateways(ctx, c.Client(), c.Dynamic(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(gws) != 1 || gws[0].Cluster != "east" || gws[0].Mirrored != 1 || gws[0].Alive != nil || gws[0].Err == nil {
			t.Fatalf("gateways %+v (no service mirror pod runs: alive unknown, with the reason)", gws)
		}
	})

	t.Run("unlink", func(t *testing.T) {
		refs, err := UnlinkRefs(ctx, c.Dynamic(), "", "east")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range refs {
			got = append(got, r.Kind+"/"+r.Namespace+"/"+r.Name)
		}
		s := strings.Join(got, " ")
		for _, want := range []string{"Link/" + ns + "/east", "Secret/" + ns + "/cluster-credentials-east", "Deployment/" + ns + "/controller-east",
			"ClusterRole//linkerd-service-mirror-access-local-resources-east", "Service/" + appNS + "/catalog-east",
			"Secret/linkerd/cluster-credentials-east"} {
			if !strings.Contains(s, want) {
				t.Errorf("unlink refs lack %s: %s", want, s)
			}
		}
		if strings.Contains(s, "/mine") {
			t.Errorf("unlink deletes a service the service mirror did not make: %s", s)
		}
		if _, err := UnlinkRefs(ctx, c.Dynamic(), "", "west"); err == nil || !strings.Contains(err.Error(), "no Link") {
			t.Errorf("unlink of an unknown cluster: %v", err)
		}
	})

	t.Run("uninstall", func(t *testing.T) {
		refs, err := Installed(ctx, c.Dynamic())
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprint(refs)
		for _, want := range []string{"linkerd-gateway", mc.RemoteAccessPrefix + "default", "links.multicluster.linkerd.io", "Namespace"} {
			if !strings.Contains(s, want) {
				t.Errorf("uninstall refs lack %s: %s", want, s)
			}
		}
	})
}

func TestParseProbeMetrics(t *testing.T) {
	body := `# TYPE gateway_alive gauge
gateway_alive{target_cluster_name="east"} 1
gateway_alive{target_cluster_name="north"} 0
# TYPE gateway_probe_latency_ms histogram
gateway_probe_latency_ms_bucket{target_cluster_name="east",le="+Inf"} 4
gateway_probe_latency_ms_sum{target_cluster_name="east"} 10
gateway_probe_latency_ms_count{target_cluster_name="east"} 4
`
	alive, lat, err := parseProbeMetrics([]byte(body), "east")
	if err != nil || alive == nil || !*alive || lat != 2500*time.Microsecond {
		t.Errorf("east: alive %v latency %v err %v", alive, lat, err)
	}
	alive, _, err = parseProbeMetrics([]byte(body), "north")
	if err != nil || alive == nil || *alive {
		t.Errorf("north: alive %v err %v", alive, err)
	}
	if _, _, err := parseProbeMetrics([]byte(body), "south"); err == nil || !strings.Contains(err.Error(), "south") {
		t.Errorf("south: err %v", err)
	}
}
