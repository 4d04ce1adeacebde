package issuer

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/eventually"
)

// writeAtomic lays files out the way the kubelet's atomic writer does for a Secret
// volume: a fresh timestamped directory, the ..data symlink swapped to it by rename, and
// top-level symlinks through ..data.
func writeAtomic(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	ts, err := os.MkdirTemp(dir, "..ts-")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatal(err)
		}
	}
}

var quiet = slog.New(slog.DiscardHandler)

type hierarchy struct {
	anchor     *certs.Authority
	anchorFile string
}

func newHierarchy(t *testing.T) hierarchy {
	t.Helper()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(time.Now(), 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), TrustRootsKey)
	if err := os.WriteFile(f, certs.EncodeCertificatesPEM(anchor.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	return hierarchy{anchor: anchor, anchorFile: f}
}

func issuerFiles(t *testing.T, a *certs.Authority, crtName, keyName string) map[string][]byte {
	t.Helper()
	key, err := certs.EncodePrivateKeyPEM(a.Key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{crtName: certs.EncodeCertificatesPEM(append([]*x509.Certificate{a.Cert}, a.Chain...)...), keyName: key}
}

func TestFileWatcherStartupProblemsNameTheSecret(t *testing.T) {
	h := newHierarchy(t)
	now := time.Now()
	expired, _ := h.anchor.NewIssuer("expired", certs.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	rogueAnchor, _ := certs.NewTrustAnchor("rogue", certs.ValidFor(now, time.Hour))
	rogue, _ := rogueAnchor.NewIssuer("rogue", certs.ValidFor(now, time.Hour))
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"missing", nil, "crt.pem: no such file"},
		{"expired", issuerFiles(t, expired, "crt.pem", "key.pem"), "not usable"},
		{"not chaining to the anchors", issuerFiles(t, rogue, "crt.pem", "key.pem"), "not usable"},
		{"not PEM", map[string][]byte{"crt.pem": []byte("junk"), "key.pem": []byte("junk")}, `"crt.pem": not a PEM certificate`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.files != nil {
				writeAtomic(t, dir, tc.files)
			}
			w := &FileWatcher{Dir: dir, TrustAnchorsFile: h.anchorFile, Source: "Secret linkerd/linkerd-identity-issuer",
				Interval: 10 * time.Millisecond, Store: &Store{}, Log: quiet}
			err := w.Start(t.Context(), 30*time.Millisecond)
			if err == nil {
				t.Fatal("started without a valid issuer")
			}
			for _, want := range []string{"Secret linkerd/linkerd-identity-issuer mounted at " + dir, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not say %q", err, want)
				}
			}
			if w.Store.Current() != nil {
				t.Fatal("credentials stored despite the error")
			}
		})
	}
}

func TestFileWatcherUnknownScheme(t *testing.T) {
	w := &FileWatcher{Dir: t.TempDir(), Scheme: "example.com/pem", Store: &Store{}}
	if err := w.Start(t.Context(), time.Millisecond); err == nil || !strings.Contains(err.Error(), "example.com/pem") {
		t.Fatalf("err = %v", err)
	}
}

func TestFileWatcherRotation(t *testing.T) {
	for _, scheme := range []string{SchemeLinkerd, SchemeKubernetes} {
		t.Run(scheme, func(t *testing.T) {
			crtName, keyName, _ := KeyNames(scheme)
			h := newHierarchy(t)
			now := time.Now()
			first, _ := h.anchor.NewIssuer("identity.linkerd.cluster.local", certs.ValidFor(now, time.Hour))
			dir := t.TempDir()
			writeAtomic(t, dir, issuerFiles(t, first, crtName, keyName))
			m := NewMetrics()
			w := &FileWatcher{Dir: dir, Scheme: scheme, TrustAnchorsFile: h.anchorFile, Interval: 5 * time.Millisecond,
				Store: &Store{}, Log: quiet, Metrics: m}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if err := w.Start(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
			if !w.Store.Current().Authority.Cert.Equal(first.Cert) {
				t.Fatal("first issuer not in use")
			}
			if got := testutil.ToFloat64(m.expiry); got != float64(first.Cert.NotAfter.Unix()) {
				t.Fatalf("expiry gauge %v, want %d", got, first.Cert.NotAfter.Unix())
			}

			second, _ := h.anchor.NewIssuer("identity-2.linkerd.cluster.local", certs.ValidFor(now, 2*time.Hour))
			writeAtomic(t, dir, issuerFiles(t, second, crtName, keyName))
			eventually.True(t, "the second issuer", func() bool { return w.Store.Current().Authority.Cert.Equal(second.Cert) })
			if got := testutil.ToFloat64(m.rotations); got != 1 {
				t.Fatalf("rotations = %v, want 1", got)
			}

			// A key that does not match its certificate is refused; the second issuer stays.
			third, _ := h.anchor.NewIssuer("identity-3.linkerd.cluster.local", certs.ValidFor(now, time.Hour))
			bad := issuerFiles(t, third, crtName, keyName)
			bad[keyName] = issuerFiles(t, second, crtName, keyName)[keyName]
			writeAtomic(t, dir, bad)
			eventually.True(t, "the refusal", func() bool { return testutil.ToFloat64(m.refused) == 1 })
			if !w.Store.Current().Authority.Cert.Equal(second.Cert) {
				t.Fatal("a refused issuer replaced the one in use")
			}
			// The refusal is reported once, not on every poll.
			polled := w.polls.Load()
			eventually.True(t, "five more polls", func() bool { return w.polls.Load() >= polled+5 })
			if got := testutil.ToFloat64(m.refused); got != 1 {
				t.Fatalf("refused = %v after several polls of the same bad issuer, want 1", got)
			}

			// Fixing the Secret takes effect.
			writeAtomic(t, dir, issuerFiles(t, third, crtName, keyName))
			eventually.True(t, "the third issuer", func() bool { return w.Store.Current().Authority.Cert.Equal(third.Cert) })
		})
	}
}

func ExampleKeyNames() {
	crt, key, _ := KeyNames(SchemeKubernetes)
	fmt.Println(crt, key)
	// Output: tls.crt tls.key
}

// TestFileWatcherAnchorRotation follows the trust-anchor rotation procedure: the bundle
// first gains the new anchor next to the old one, then the issuer is replaced by one the
// new anchor signed, then the old anchor leaves the bundle. An issuer signed by an anchor
// not (yet) in the bundle is refused.
func TestFileWatcherAnchorRotation(t *testing.T) {
	h := newHierarchy(t)
	now := time.Now()
	oldIss, _ := h.anchor.NewIssuer("old-issuer", certs.ValidFor(now, time.Hour))
	newAnchor, _ := certs.NewTrustAnchor("new-anchor", certs.ValidFor(now, 24*time.Hour))
	newIss, _ := newAnchor.NewIssuer("new-issuer", certs.ValidFor(now, time.Hour))
	dir := t.TempDir()
	writeAtomic(t, dir, issuerFiles(t, oldIss, "crt.pem", "key.pem"))
	m := NewMetrics()
	w := &FileWatcher{Dir: dir, TrustAnchorsFile: h.anchorFile, Interval: 5 * time.Millisecond, Store: &Store{}, Log: quiet, Metrics: m}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := w.Start(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	writeAnchors := func(as ...*certs.Authority) {
		var pem []byte
		for _, a := range as {
			pem = append(pem, certs.EncodeCertificatesPEM(a.Cert)...)
		}
		tmp := h.anchorFile + ".tmp"
		if err := os.WriteFile(tmp, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, h.anchorFile); err != nil {
			t.Fatal(err)
		}
	}

	// Too early: the new issuer does not chain to the current bundle.
	writeAtomic(t, dir, issuerFiles(t, newIss, "crt.pem", "key.pem"))
	eventually.True(t, "the refusal", func() bool { return testutil.ToFloat64(m.refused) == 1 })
	if !w.Store.Current().Authority.Cert.Equal(oldIss.Cert) {
		t.Fatal("issuer of an unknown anchor taken into use")
	}
	// Adding the new anchor makes the same files valid.
	writeAnchors(h.anchor, newAnchor)
	eventually.True(t, "the new issuer", func() bool { return w.Store.Current().Authority.Cert.Equal(newIss.Cert) })
	if got := len(w.Store.Current().Anchors); got != 2 {
		t.Fatalf("%d anchors in use, want 2", got)
	}
	// Dropping the old anchor updates the bundle in use.
	writeAnchors(newAnchor)
	eventually.True(t, "the one-anchor bundle", func() bool { return len(w.Store.Current().Anchors) == 1 })
}
