package issuer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often FileWatcher looks at the mounted files.
const DefaultPollInterval = time.Second

// FileWatcher keeps a Store loaded from the issuer Secret mounted as a directory, as
// Linkerd mounts linkerd-identity-issuer at /var/run/linkerd/identity/issuer, and from
// the trust-anchor bundle mounted from the linkerd-identity-trust-roots ConfigMap. It
// polls the files; Kubernetes replaces a mounted Secret atomically (through the ..data
// symlink), and a read that straddles such a swap is retried.
type FileWatcher struct {
	// Dir holds the issuer certificate and key files named by Scheme.
	Dir string
	// Scheme is SchemeLinkerd (crt.pem, key.pem; the default) or SchemeKubernetes
	// (tls.crt, tls.key).
	Scheme string
	// TrustAnchorsFile is the PEM bundle of trust anchors.
	TrustAnchorsFile string
	// Source names the mounted Secret in errors and logs, for example
	// "Secret linkerd/linkerd-identity-issuer".
	Source string
	// Interval between polls; DefaultPollInterval when zero.
	Interval time.Duration
	Store    *Store
	Log      *slog.Logger
	// Metrics are updated on loads and rotations; unregistered ones are used when nil.
	Metrics *Metrics
	// Events, when set, receives IssuerUpdated and IssuerUpdateRefused Events.
	Events *EventRecorder
	// Now is the clock for validity checks; time.Now when nil.
	Now func() time.Time

	rot              rotator
	crtName, keyName string
	polls            atomic.Int64 // completed polls, for tests
}

// snapshot is one consistent read of the three files, or the error reading them.
type snapshot struct {
	crt, key, anchors []byte
	err               error
}

func (s snapshot) same(o snapshot) bool {
	if (s.err == nil) != (o.err == nil) || (s.err != nil && s.err.Error() != o.err.Error()) {
		return false
	}
	return bytes.Equal(s.crt, o.crt) && bytes.Equal(s.key, o.key) && bytes.Equal(s.anchors, o.anchors)
}

// Start loads the credentials once and returns; an error means no valid issuer could be
// read within timeout, and names the Secret, the file and the problem. Later changes to
// the files are applied (or refused) in the background until ctx ends.
func (w *FileWatcher) Start(ctx context.Context, timeout time.Duration) error {
	var err error
	if w.crtName, w.keyName, err = KeyNames(w.Scheme); err != nil {
		return err
	}
	if w.Interval <= 0 {
		w.Interval = DefaultPollInterval
	}
	if w.Source == "" {
		w.Source = "issuer"
	}
	w.rot.init(w.Store, w.Log, w.Metrics, w.Events, w.Now)
	deadline := time.Now().Add(timeout)
	for {
		snap := w.read()
		creds, err := w.load(snap)
		if err == nil {
			w.rot.first(creds)
			go w.loop(ctx, snap)
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("no valid identity issuer after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no valid identity issuer: %w (%w)", err, ctx.Err())
		case <-time.After(w.Interval):
		}
	}
}

// loop polls the files. Valid new content is used at once; invalid content is refused
// only when two consecutive polls read the same thing, so that a half-written update
// (files written one by one outside Kubernetes) is not reported as a bad issuer.
func (w *FileWatcher) loop(ctx context.Context, applied snapshot) {
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	var pending snapshot
	havePending := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.polls.Add(1)
		snap := w.read()
		if snap.same(applied) {
			havePending = false
			continue
		}
		creds, err := w.load(snap)
		if err != nil && !(havePending && snap.same(pending)) {
			pending, havePending = snap, true
			continue
		}
		havePending = false
		w.rot.apply(ctx, creds, err)
		applied = snap
	}
}

// read reads the three files, retrying when the Secret volume's ..data link changed
// during the read.
func (w *FileWatcher) read() snapshot {
	var snap snapshot
	for range 5 {
		before, _ := os.Readlink(filepath.Join(w.Dir, "..data"))
		snap = snapshot{}
		snap.crt, snap.err = w.readFile(filepath.Join(w.Dir, w.crtName))
		if snap.err == nil {
			snap.key, snap.err = w.readFile(filepath.Join(w.Dir, w.keyName))
		}
		if snap.err == nil {
			snap.anchors, snap.err = readFile("trust anchors", w.TrustAnchorsFile)
		}
		after, _ := os.Readlink(filepath.Join(w.Dir, "..data"))
		if before == after {
			break
		}
	}
	return snap
}

func (w *FileWatcher) readFile(path string) ([]byte, error) {
	return readFile(fmt.Sprintf("%s mounted at %s", w.Source, w.Dir), path)
}

func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

func (w *FileWatcher) load(s snapshot) (*Credentials, error) {
	if s.err != nil {
		return nil, s.err
	}
	anchors, err := ParseAnchorsPEM(w.TrustAnchorsFile, s.anchors)
	if err != nil {
		return nil, err
	}
	return LoadPEM(fmt.Sprintf("%s mounted at %s", w.Source, w.Dir), w.crtName, s.crt, w.keyName, s.key, anchors, w.rot.now())
}
