package servicemirror

//lint:file-ignore SA1019 the service mirror writes v1 Endpoints (see mirror.go)

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

const waitFor = time.Minute

// eventually polls cond every 50ms until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, waitFor, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// linkedClusters is a local cluster (the package's) and a remote one reached through a
// relay that can be switched off, with a namespace of the same name in both.
type linkedClusters struct {
	local, remote kubernetes.Interface
	viaRelay      kubernetes.Interface // the remote cluster through the relay
	remoteCluster *kube.Cluster
	relay         *switchRelay
	ns            string
}

func link(t *testing.T) *linkedClusters { return linkB(t) }

// linkB is link for tests and benchmarks.
func linkB(t testing.TB) *linkedClusters {
	local := kube.Shared(t)
	if os.Getenv("L5D_SKIP_KUBE") == "1" {
		t.Skip("L5D_SKIP_KUBE=1")
	}
	remote, err := kube.Start(kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remote.Stop)
	relay := newSwitchRelay(t, strings.TrimPrefix(remote.Host(), "https://"))
	cfg := remote.RESTConfig()
	cfg.Host = "https://" + relay.addr
	// Fail fast while the relay is down, so the test sees recovery promptly.
	cfg.Timeout = 10 * time.Second
	remoteClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := local.Namespace(t)
	if _, err := remote.Client().CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &linkedClusters{local: local.Client(), remote: remote.Client(), viaRelay: remoteClient, remoteCluster: remote, relay: relay, ns: ns}
}

func testLink(t *testing.T, gatewayIP string) *mc.Config { return testLinkB(t, gatewayIP) }

func testLinkB(t testing.TB, gatewayIP string) *mc.Config {
	l := &mc.Link{ObjectMeta: metav1.ObjectMeta{Name: "east", Namespace: mc.Namespace}, Spec: mc.LinkSpec{
		TargetClusterName:        "east",
		ClusterCredentialsSecret: "cluster-credentials-east",
		GatewayAddress:           gatewayIP,
		GatewayPort:              "4143",
		GatewayIdentity:          "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local",
		Selector:                 mc.DefaultSelector(),
		RemoteDiscoverySelector:  mc.DefaultRemoteDiscoverySelector(),
		ExcludedLabels:           []string{"secret.example.com/*"},
	}}
	cfg, err := mc.Parse(l)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func service(ns, name, export string, ports ...int32) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels:      map[string]string{"app": name, "secret.example.com/team": "a"},
			Annotations: map[string]string{"note": "from east"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}},
	}
	if export != "" {
		s.Labels[mc.LabelExported] = export
	}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p, Protocol: corev1.ProtocolTCP})
	}
	return s
}

func (lc *linkedClusters) mirror(name string) (*corev1.Service, *corev1.Endpoints, error) {
	ctx := context.Background()
	svc, err := lc.local.CoreV1().Services(lc.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	ep, err := lc.local.CoreV1().Endpoints(lc.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return svc, nil, nil
	}
	return svc, ep, err
}

func (lc *linkedClusters) gone(name string) func() error {
	return func() error {
		_, err := lc.local.CoreV1().Services(lc.ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = lc.local.CoreV1().Endpoints(lc.ns).Get(context.Background(), name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%s/%s still exists", lc.ns, name)
	}
}

func TestMirrorFollowsRemoteServices(t *testing.T) {
	lc := link(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	remoteSvcs := lc.remote.CoreV1().Services(lc.ns)

	// Before the controller starts: one exported Service, one not, and a local Service
	// that happens to have a mirror's name but is not ours.
	if _, err := remoteSvcs.Create(ctx, service(lc.ns, "catalog", "true", 8080), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := remoteSvcs.Create(ctx, service(lc.ns, "private", "", 8080), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := remoteSvcs.Create(ctx, service(lc.ns, "web", "true", 80), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := service(lc.ns, "web-east", "", 9999)
	if _, err := lc.local.CoreV1().Services(lc.ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	// The controller reaches the remote cluster through the relay.
	c := &Controller{Link: testLink(t, "192.0.2.10"), Local: lc.local, Remote: lc.viaRelay,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Metrics: NewMetrics(reg)}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	t.Run("gateway mirror created", func(t *testing.T) {
		eventually(t, "catalog-east mirrored", func() error {
			svc, ep, err := lc.mirror("catalog-east")
			if err != nil {
				return err
			}
			if ep == nil {
				return fmt.Errorf("no endpoints yet")
			}
			if got := svc.Labels; got[mc.LabelMirroredService] != "true" || got[mc.LabelClusterName] != "east" ||
				got["app"] != "catalog" || got[mc.LabelExported] != "" || got["secret.example.com/team"] != "" {
				return fmt.Errorf("labels %v", got)
			}
			if svc.Spec.Selector != nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 {
				return fmt.Errorf("spec %+v", svc.Spec)
			}
			if got := svc.Annotations[mc.AnnRemoteSvcFQName]; got != "catalog."+lc.ns+".svc.cluster.local" {
				return fmt.Errorf("fq name %q", got)
			}
			if svc.Annotations["note"] != "from east" {
				return fmt.Errorf("annotations %v", svc.Annotations)
			}
			if got := ep.Annotations[mc.AnnRemoteGatewayIdentity]; got != c.Link.GatewayIdentity || svc.Annotations[mc.AnnRemoteGatewayIdentity] != got {
				return fmt.Errorf("gateway identity %q", got)
			}
			// The gateway has not been probed alive: the address is not ready.
			if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 0 || len(ep.Subsets[0].NotReadyAddresses) != 1 ||
				ep.Subsets[0].NotReadyAddresses[0].IP != "192.0.2.10" || ep.Subsets[0].Ports[0].Port != 4143 {
				return fmt.Errorf("subsets %+v", ep.Subsets)
			}
			return nil
		})
		if _, err := lc.local.CoreV1().Services(lc.ns).Get(ctx, "private-east", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("unexported service mirrored (err %v)", err)
		}
	})

	t.Run("a local object with the mirror's name is left alone", func(t *testing.T) {
		svc, _, err := lc.mirror("web-east")
		if err != nil {
			t.Fatal(err)
		}
		if svc.Labels[mc.LabelMirroredService] != "" || svc.Spec.Ports[0].Port != 9999 {
			t.Errorf("foreign service changed: %+v", svc)
		}
	})

	t.Run("gateway alive makes the address ready", func(t *testing.T) {
		c.SetGatewayAlive(true)
		eventually(t, "ready address", func() error {
			_, ep, err := lc.mirror("catalog-east")
			if err != nil {
				return err
			}
			if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 {
				return fmt.Errorf("subsets %+v", ep.Subsets)
			}
			return nil
		})
	})

	t.Run("remote update", func(t *testing.T) {
		s, err := remoteSvcs.Get(ctx, "catalog", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP})
		s.Labels["tier"] = "backend"
		if _, err := remoteSvcs.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "mirror updated", func() error {
			svc, ep, err := lc.mirror("catalog-east")
			if err != nil {
				return err
			}
			if len(svc.Spec.Ports) != 2 || svc.Labels["tier"] != "backend" || len(ep.Subsets[0].Ports) != 2 {
				return fmt.Errorf("service %+v, endpoints %+v", svc, ep)
			}
			return nil
		})
	})

	t.Run("a hand-deleted mirror comes back", func(t *testing.T) {
		if err := lc.local.CoreV1().Endpoints(lc.ns).Delete(ctx, "catalog-east", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "endpoints restored", func() error {
			_, ep, err := lc.mirror("catalog-east")
			if err == nil && ep == nil {
				return fmt.Errorf("no endpoints")
			}
			return err
		})
	})

	t.Run("switch to remote discovery", func(t *testing.T) {
		s, err := remoteSvcs.Get(ctx, "catalog", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Labels[mc.LabelExported] = mc.ExportedRemoteDiscovery
		if _, err := remoteSvcs.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "pod-to-pod mirror", func() error {
			svc, ep, err := lc.mirror("catalog-east")
			if err != nil {
				return err
			}
			if svc.Labels[mc.LabelRemoteDiscovery] != "east" || svc.Labels[mc.LabelRemoteService] != "catalog" {
				return fmt.Errorf("labels %v", svc.Labels)
			}
			if ep != nil {
				return fmt.Errorf("endpoints still there: %+v", ep.Subsets)
			}
			return nil
		})
		eventually(t, "mirrored count", func() error {
			if got := testutil.ToFloat64(c.Metrics.Mirrored.WithLabelValues("east", "remote-discovery")); got != 1 {
				return fmt.Errorf("remote-discovery mirrors = %v", got)
			}
			return nil
		})
	})

	t.Run("unexport deletes the mirror", func(t *testing.T) {
		s, err := remoteSvcs.Get(ctx, "catalog", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(s.Labels, mc.LabelExported)
		if _, err := remoteSvcs.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "mirror deleted", lc.gone("catalog-east"))
	})

	t.Run("remote API server goes away and comes back", func(t *testing.T) {
		if _, err := remoteSvcs.Create(ctx, service(lc.ns, "orders", "true", 8080), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "orders mirrored", func() error { _, _, err := lc.mirror("orders-east"); return err })
		lc.relay.Down()
		// While the link is down: orders goes, users arrives.
		if err := remoteSvcs.Delete(ctx, "orders", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := remoteSvcs.Create(ctx, service(lc.ns, "users", "true", 8080), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The mirror is kept while the remote cluster cannot be asked.
		if _, _, err := lc.mirror("orders-east"); err != nil {
			t.Fatalf("mirror deleted while the remote API server was away: %v", err)
		}
		lc.relay.Up()
		eventually(t, "users mirrored after reconnect", func() error { _, _, err := lc.mirror("users-east"); return err })
		eventually(t, "orders mirror deleted after reconnect", lc.gone("orders-east"))
	})

	t.Run("cleanup deletes only this link's mirrors", func(t *testing.T) {
		cancel()
		<-done
		done <- nil
		deleted, err := Cleanup(context.Background(), lc.local, "east")
		if err != nil {
			t.Fatal(err)
		}
		if len(deleted) != 1 || deleted[0] != lc.ns+"/users-east" {
			t.Errorf("deleted %v, want [%s/users-east]", deleted, lc.ns)
		}
		if _, _, err := lc.mirror("web-east"); err != nil {
			t.Errorf("foreign service: %v", err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
