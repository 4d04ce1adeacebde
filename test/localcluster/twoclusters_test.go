package localcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eastAddresses is a second cluster's plan, apart from the default one.
var eastAddresses = Addresses{
	PodCIDR:          netip.MustParsePrefix("10.245.0.0/16"),
	PodCIDRv6:        netip.MustParsePrefix("fd00:245::/64"),
	ServiceCIDR:      netip.MustParsePrefix("10.97.0.0/16"),
	LoadBalancerCIDR: netip.MustParsePrefix("10.251.0.0/24"),
}

// TestTwoClustersSideBySide runs a second cluster with an address plan of its own beside
// the package's shared one, connects them, and checks what multicluster needs: pods of one
// reach pods of the other by address (a flat network), a LoadBalancer Service gets an
// address of its cluster's range that the other cluster reaches through kube-proxy, and
// the other cluster's API server answers at its node address.
func TestTwoClustersSideBySide(t *testing.T) {
	west := cluster(t)
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	east, err := Up(context.Background(), Options{RunDir: dir, BinDirs: []string{testImageDir}, Logger: log, Addresses: eastAddresses})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := east.Close(); err != nil {
			t.Errorf("closing east: %v", err)
		}
	})

	// Its own plan, everywhere it shows.
	if got := east.NodeIP().String(); got != "10.245.0.1" {
		t.Errorf("east's node address %s, want 10.245.0.1", got)
	}
	kubeSvc, err := east.Client().CoreV1().Services("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kubeSvc.Spec.ClusterIP != "10.97.0.1" {
		t.Errorf("east's kubernetes Service at %s, want 10.97.0.1", kubeSvc.Spec.ClusterIP)
	}
	dnsSvc, err := east.Client().CoreV1().Services("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dnsSvc.Spec.ClusterIP != east.DNSServiceIP().String() || east.DNSServiceIP().String() != "10.97.0.10" {
		t.Errorf("east's kube-dns Service at %s, want %s (10.97.0.10)", dnsSvc.Spec.ClusterIP, east.DNSServiceIP())
	}

	// As two l5d-cluster processes would be connected: by their run directories.
	if err := ConnectRunDirs(west.RunDir(), east.RunDir()); err != nil {
		t.Fatal(err)
	}

	// Pod to pod, both ways.
	westPod, eastPod := addPod(t, west, "mc-west"), addPod(t, east, "mc-east")
	if !eastAddresses.PodCIDR.Contains(eastPod.IPv4) {
		t.Fatalf("east's pod got %s, outside %s", eastPod.IPv4, eastAddresses.PodCIDR)
	}
	serveHTTP(t, eastPod, 8080, "hello from east")
	serveHTTP(t, westPod, 8080, "hello from west")
	curlGets(t, westPod, "http://"+eastPod.IPv4.String()+":8080/", "hello from east")
	curlGets(t, eastPod, "http://"+westPod.IPv4.String()+":8080/", "hello from west")

	// A LoadBalancer Service in east, reached from a west pod at its ingress address.
	ns := east.Kube().Namespace(t)
	exposePod(t, east, ns, "gateway", eastPod, 4143, 8080)
	svcs := east.Client().CoreV1().Services(ns)
	svc, err := svcs.Get(context.Background(), "gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	if _, err := svcs.Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var lbIP string
	eventually.NoError(t, "the load balancer's address", func() error {
		s, err := svcs.Get(context.Background(), "gateway", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if in := s.Status.LoadBalancer.Ingress; len(in) == 1 && in[0].IP != "" {
			lbIP = in[0].IP
			return nil
		}
		return fmt.Errorf("status.loadBalancer is %+v", s.Status.LoadBalancer)
	})
	if ip := netip.MustParseAddr(lbIP); !eastAddresses.LoadBalancerCIDR.Contains(ip) {
		t.Fatalf("load-balancer address %s is outside %s", ip, eastAddresses.LoadBalancerCIDR)
	}
	curlGets(t, westPod, "http://"+lbIP+":4143/", "hello from east")

	// Back to ClusterIP: the address is taken back.
	svc, err = svcs.Get(context.Background(), "gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := svcs.Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.NoError(t, "the load balancer's address given back", func() error {
		s, err := svcs.Get(context.Background(), "gateway", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			return fmt.Errorf("status.loadBalancer is still %+v", s.Status.LoadBalancer)
		}
		return nil
	})

	// East's API server, from a west pod, at east's node address.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // only the route is under test
		DialContext:     westPod.Dial,
	}}
	eventually.NoError(t, "east's API server from a west pod", func() error {
		resp, err := client.Get("https://" + east.APIServerAddr().String() + "/livez")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
}

// curlGets polls url with curl from pod until the body is want.
func curlGets(t *testing.T, p *netns.Pod, url, want string) {
	t.Helper()
	eventually.NoError(t, "GET "+url+" from "+p.PodName, func() error {
		out, err := run(p, "curl", "-sS", "--max-time", "5", url)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != want {
			return fmt.Errorf("got %q, want %q", out, want)
		}
		return nil
	})
}

// TestLoadBalancerAddresses checks the load-balancer controller's choices on the shared
// cluster: a free spec.loadBalancerIP of the range is honoured, one outside the range is
// not, a Service of another loadBalancerClass is left alone, and no two Services share an
// address.
func TestLoadBalancerAddresses(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	svcs := c.Client().CoreV1().Services(ns)
	mk := func(name, ip string, class *string) {
		t.Helper()
		_, err := svcs.Create(context.Background(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: ip, LoadBalancerClass: class,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("asked", "10.250.0.77", nil)
	mk("outside", "192.0.2.1", nil)
	mk("plain", "", nil)
	mk("other-class", "", ptr("example.com/other"))
	got := map[string]string{}
	eventually.NoError(t, "load-balancer addresses", func() error {
		for _, name := range []string{"asked", "outside", "plain"} {
			s, err := svcs.Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(s.Status.LoadBalancer.Ingress) != 1 {
				return fmt.Errorf("%s: status.loadBalancer %+v", name, s.Status.LoadBalancer)
			}
			got[name] = s.Status.LoadBalancer.Ingress[0].IP
		}
		return nil
	})
	if got["asked"] != "10.250.0.77" {
		t.Errorf("asked for 10.250.0.77, got %s", got["asked"])
	}
	seen := map[string]string{}
	for name, ip := range got {
		if a := netip.MustParseAddr(ip); !LoadBalancerCIDR.Contains(a) {
			t.Errorf("%s got %s, outside %s", name, ip, LoadBalancerCIDR)
		}
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s share %s", name, other, ip)
		}
		seen[ip] = name
	}
	s, err := svcs.Get(context.Background(), "other-class", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("a Service of another class got %+v", s.Status.LoadBalancer)
	}
}
