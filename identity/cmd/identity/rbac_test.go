package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/eventually"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/test/kube"
)

// readmeRBAC returns the YAML block that follows the "<!-- rbac: name -->" marker in the
// package README, so that the test exercises the documentation itself.
func readmeRBAC(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- rbac: "+name+" -->\n```yaml\n")
	if !ok {
		t.Fatalf("README.md has no RBAC block %q", name)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("README.md RBAC block %q is not closed", name)
	}
	return block
}

// saKubeconfig writes a kubeconfig that authenticates with a token of ns/sa.
func saKubeconfig(t *testing.T, c *kube.Cluster, ns, sa string) string {
	t.Helper()
	token := c.Token(t, ns, sa, kube.TokenOptions{})
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: %s
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: %s}
current-context: test
`, c.Host(), base64.StdEncoding.EncodeToString(c.CA()), sa, token, sa)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunsWithDocumentedRBAC runs the binary as the linkerd-identity ServiceAccount with
// only the permissions README.md documents: it starts, certifies a workload through a
// real TokenReview, and records a refused issuer update as an Event; with -issuer-source
// api it also reads the Secret and ConfigMap.
func TestRunsWithDocumentedRBAC(t *testing.T) {
	c := kube.Shared(t)
	cp := c.Namespace(t)
	c.CreateServiceAccount(t, cp, "linkerd-identity")
	yaml := readmeRBAC(t, "base") + "---\n" + readmeRBAC(t, "api")
	c.Apply(t, cp, strings.ReplaceAll(yaml, "namespace: linkerd\n", "namespace: "+cp+"\n"))
	kubeconfig := saKubeconfig(t, c, cp, "linkerd-identity")

	now := time.Now()
	anchor, _ := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, 72*time.Hour))
	iss, _ := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(now, 48*time.Hour))
	anchorsPEM := certs.EncodeCertificatesPEM(anchor.Cert)
	anchorsFile := filepath.Join(t.TempDir(), "ca-bundle.crt")
	if err := os.WriteFile(anchorsFile, anchorsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	files := issuerFiles(t, iss, "crt.pem", "key.pem")
	if _, err := c.Client().CoreV1().Secrets(cp).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultSecretName},
		Data: files}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().CoreV1().ConfigMaps(cp).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultTrustRootsMap},
		Data: map[string]string{issuer.TrustRootsKey: string(anchorsPEM)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(t)
	c.CreateServiceAccount(t, ns, "web")
	token := c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	id := fmt.Sprintf("web.%s.serviceaccount.identity.%s.cluster.local", ns, cp)

	for _, source := range []string{"files", "api"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			writeMounted(t, dir, files)
			addr, adminAddr := freeAddr(t), freeAddr(t)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			var runErr error
			go func() {
				defer close(done)
				runErr = run(ctx, []string{"-addr", addr, "-admin-addr", adminAddr, "-kubeconfig", kubeconfig,
					"-controller-namespace", cp, "-issuer-source", source, "-issuer", dir,
					"-identity-trust-anchors-file", anchorsFile, "-startup-timeout", "30s", "-log-level", "error"})
			}()
			defer func() { cancel(); <-done }()
			eventually.True(t, "readiness", func() bool {
				select {
				case <-done:
					t.Fatalf("identity stopped: %v", runErr)
				default:
				}
				return httpStatus("http://"+adminAddr+"/ready") == http.StatusOK
			})
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			csr, err := certs.NewCSR(mustKey(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pb.NewIdentityClient(cc).Certify(t.Context(), &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csr}); err != nil {
				t.Fatalf("Certify with the documented RBAC: %v", err)
			}
			if source != "files" {
				return
			}
			// A refused rotation is recorded as an Event, which needs the events permission.
			rogueAnchor, _ := certs.NewTrustAnchor("rogue", certs.ValidFor(now, time.Hour))
			rogue, _ := rogueAnchor.NewIssuer("rogue", certs.ValidFor(now, time.Hour))
			writeMounted(t, dir, issuerFiles(t, rogue, "crt.pem", "key.pem"))
			eventually.True(t, "the IssuerUpdateRefused event", func() bool {
				evs, err := c.Client().CoreV1().Events(cp).List(t.Context(), metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs.Items {
					if ev.Reason == issuer.ReasonIssuerUpdateRefused && ev.Source.Component == "linkerd-identity" {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestRefusesToStartWithoutTokenReviewPermission: an account without the ClusterRole gets
// an error naming the missing permission instead of a service that refuses every proxy.
func TestRefusesToStartWithoutTokenReviewPermission(t *testing.T) {
	c := kube.Shared(t)
	cp := c.Namespace(t)
	c.CreateServiceAccount(t, cp, "nobody")
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-kubeconfig", saKubeconfig(t, c, cp, "nobody"), "-controller-namespace", cp, "-log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "tokenreviews") {
		t.Fatalf("err = %v, want one naming tokenreviews", err)
	}
}
