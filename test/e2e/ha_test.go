package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/test/demo/traffic"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// controlPlane are the control-plane components: Deployment linkerd-<name>, pods labelled
// linkerd.io/control-plane-component=<name>.
var controlPlane = []string{"identity", "destination", "proxy-injector"}

// TestControlPlaneDisruptionsFailNoRequest runs the demo application (no deliberate
// failures) under steady traffic and disrupts the HA control plane three ways, asserting
// after each that the traffic generator saw no failed request and kept going: one
// replica of each component killed; the whole control plane scaled to zero and back; and
// the identity issuer rotated through its Secret, with a new web replica (certified by
// the new issuer) then serving the traffic.
func TestControlPlaneDisruptionsFailNoRequest(t *testing.T) {
	s := need(t)
	const ns = "e2e-ha"
	s.DemoApp(t, ns, "0")
	s.WaitPodsReady(t, 4*time.Minute, ns, "", 4, true)
	trafficPod := s.podOf(t, ns, "traffic")
	base := s.SteadyTraffic(t, ns, trafficPod)

	t.Run("one replica of each component killed", func(t *testing.T) {
		var killed []string
		for _, component := range controlPlane {
			cp := s.WaitPodsReady(t, 3*time.Minute, "linkerd", "linkerd.io/control-plane-component="+component, 3, true)
			victim := cp[0].Name
			zero := int64(0)
			if err := s.Cluster.Client().CoreV1().Pods("linkerd").Delete(s.Ctx, victim, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatalf("killing %s: %v", victim, err)
			}
			killed = append(killed, victim)
		}
		t.Logf("killed %v", killed)
		for _, component := range controlPlane {
			s.WaitPodsReady(t, 4*time.Minute, "linkerd", "linkerd.io/control-plane-component="+component, 3, true)
		}
		base = s.NoFailuresSince(t, ns, trafficPod, base, 100)
	})

	t.Run("whole control plane down", func(t *testing.T) {
		s.ScaleControlPlane(t, 0)
		s.Eventually(t, 3*time.Minute, "every control-plane pod gone", func() string {
			list, err := s.Cluster.Client().CoreV1().Pods("linkerd").List(s.Ctx, metav1.ListOptions{})
			if err != nil {
				return err.Error()
			}
			if n := len(list.Items); n > 0 {
				return fmt.Sprintf("%d pods left", n)
			}
			return ""
		})
		base = s.NoFailuresSince(t, ns, trafficPod, base, 200)
		s.ScaleControlPlane(t, 3)
		for _, component := range controlPlane {
			s.WaitPodsReady(t, 5*time.Minute, "linkerd", "linkerd.io/control-plane-component="+component, 3, true)
		}
		base = s.NoFailuresSince(t, ns, trafficPod, base, 100)
	})

	t.Run("issuer rotated through the Secret", func(t *testing.T) {
		issuer := s.RotateIssuer(t)
		// A new web replica gets its certificate from the new issuer and serves traffic
		// from clients still holding certificates of the old one.
		s.Scale(t, ns, "web", 2)
		webs := s.WaitPodsReady(t, 4*time.Minute, ns, "app=web", 2, true)
		var fresh corev1.Pod
		for _, p := range webs {
			if s.IssuedBy(t, p, "web", ns, issuer) {
				fresh = p
			}
		}
		if fresh.Name == "" {
			t.Fatalf("no web replica presents a certificate from the new issuer")
		}
		trafficID := identity(ns, "traffic")
		s.Eventually(t, 2*time.Minute, "the new web replica serves mTLS requests from "+trafficID, func() string {
			m, err := s.ProxyMetrics(ns, fresh.Name)
			if err != nil {
				return err.Error()
			}
			if !meshedRequestsFrom(m, trafficID) {
				return "request_total lines:\n" + grepLines(m, "request_total")
			}
			return ""
		})
		s.NoFailuresSince(t, ns, trafficPod, base, 100)
	})
}

// DemoApp applies test/demo/app.yaml into namespace ns instead of l5d-demo, with
// ratings failing failureShare of its GetRating calls, and deletes it when t ends.
func (s *Suite) DemoApp(t *testing.T, ns, failureShare string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.Root, "test", "demo", "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	app := strings.ReplaceAll(string(raw), demoNS, ns)
	const share = "- name: FAILURE_SHARE\n          value: "
	i := strings.Index(app, share)
	if i < 0 {
		t.Fatal("test/demo/app.yaml no longer sets FAILURE_SHARE for ratings the way DemoApp expects")
	}
	j := i + len(share) + strings.IndexByte(app[i+len(share):], '\n')
	app = app[:i] + share + fmt.Sprintf("%q", failureShare) + app[j:]
	s.Apply(t, app)
	s.deleteAtCleanup(t, ns)
}

// SteadyTraffic waits until a demo-traffic pod has completed at least 50 requests in a
// row without a failure (the mesh has settled) and returns its stats at that point.
func (s *Suite) SteadyTraffic(t *testing.T, ns, pod string) traffic.Stats {
	t.Helper()
	var mark, last traffic.Stats
	s.Eventually(t, 3*time.Minute, "50 requests in a row without a failure from "+pod, func() string {
		st, err := s.TrafficStats(ns, pod)
		if err != nil {
			return err.Error()
		}
		last = st
		if st.Failed != mark.Failed || mark.Sent == 0 {
			mark = st
			return fmt.Sprintf("restarting the window at %+v", st)
		}
		if st.Sent-mark.Sent < 50 {
			return fmt.Sprintf("%d requests since the last failure", st.Sent-mark.Sent)
		}
		return ""
	})
	return last
}

// NoFailuresSince waits until the traffic pod has completed at least n more requests
// than in base and returns its stats then; it fails t (and stops waiting) as soon as a
// request has failed since base.
func (s *Suite) NoFailuresSince(t *testing.T, ns, pod string, base traffic.Stats, n int64) traffic.Stats {
	t.Helper()
	var st traffic.Stats
	s.Eventually(t, 3*time.Minute, fmt.Sprintf("%d more requests from %s", n, pod), func() string {
		var err error
		if st, err = s.TrafficStats(ns, pod); err != nil {
			return err.Error()
		}
		if st.Failed != base.Failed || st.Sent-base.Sent >= n {
			return ""
		}
		return fmt.Sprintf("%d requests since, want %d", st.Sent-base.Sent, n)
	})
	if st.Failed != base.Failed {
		t.Errorf("%d of %d requests since failed: statuses %v, before %v", st.Failed-base.Failed, st.Sent-base.Sent, st.ByStatus, base.ByStatus)
	} else {
		t.Logf("%d more requests from %s, none failed (statuses %v)", st.Sent-base.Sent, pod, st.ByStatus)
	}
	return st
}

// Scale sets a Deployment's replicas.
func (s *Suite) Scale(t *testing.T, ns, deployment string, replicas int) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := s.Cluster.Client().AppsV1().Deployments(ns).Patch(s.Ctx, deployment, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("scaling %s/%s to %d: %v", ns, deployment, replicas, err)
	}
}

// ScaleControlPlane scales every control-plane Deployment to replicas.
func (s *Suite) ScaleControlPlane(t *testing.T, replicas int) {
	t.Helper()
	for _, component := range controlPlane {
		s.Scale(t, "linkerd", "linkerd-"+component, replicas)
	}
}

// RotateIssuer signs a new issuer with the suite's trust anchor, writes it into the
// linkerd-identity-issuer Secret as a user would, waits until every identity replica
// reports IssuerUpdated, and returns the new issuer.
func (s *Suite) RotateIssuer(t *testing.T) *certs.Authority {
	t.Helper()
	issuer, err := s.Anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(time.Now(), 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.EncodePrivateKeyPEM(issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	secrets := s.Cluster.Client().CoreV1().Secrets("linkerd")
	sec, err := secrets.Get(s.Ctx, "linkerd-identity-issuer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["crt.pem"] = certs.EncodeCertificatesPEM(issuer.Cert)
	sec.Data["key.pem"] = key
	rotatedAt := time.Now().Add(-time.Second).Truncate(time.Second)
	if _, err := secrets.Update(s.Ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating the issuer Secret: %v", err)
	}
	s.Eventually(t, 3*time.Minute, "an IssuerUpdated event from every identity replica", func() string {
		evs, err := s.Cluster.Client().CoreV1().Events("linkerd").List(s.Ctx, metav1.ListOptions{FieldSelector: "reason=IssuerUpdated"})
		if err != nil {
			return err.Error()
		}
		var n int32
		for _, e := range evs.Items {
			if !e.CreationTimestamp.Time.Before(rotatedAt) || !e.LastTimestamp.Time.Before(rotatedAt) {
				n += max(e.Count, 1)
			}
		}
		if n < 3 {
			return fmt.Sprintf("%d IssuerUpdated events since the update", n)
		}
		return ""
	})
	s.Issuer = issuer
	return issuer
}

// IssuedBy reports whether the certificate the pod's proxy presents (for identity
// <sa>.<ns>) was signed by issuer. It connects with TLS from the node namespace to the
// pod's proxy inbound port, as a meshed client would, and reads the server certificate.
func (s *Suite) IssuedBy(t *testing.T, pod corev1.Pod, sa, ns string, issuer *certs.Authority) bool {
	t.Helper()
	var leaf *x509.Certificate
	s.Eventually(t, time.Minute, "the certificate of "+pod.Name, func() string {
		conn, err := s.Cluster.DialPod(s.Ctx, net.JoinHostPort(pod.Status.PodIP, "4143"))
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		tc := tls.Client(conn, &tls.Config{
			ServerName:         identity(ns, sa),
			InsecureSkipVerify: true, // the point is to read the certificate, whoever signed it
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					leaf = cs.PeerCertificates[0]
				}
				return nil
			},
		})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		_ = tc.Handshake() // may fail for want of a client certificate, after we saw the server's
		if leaf == nil {
			return "no server certificate"
		}
		return ""
	})
	return leaf.CheckSignatureFrom(issuer.Cert) == nil
}
