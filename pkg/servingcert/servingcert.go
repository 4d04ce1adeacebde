// Package servingcert serves a TLS certificate and key from files (a mounted Secret) and
// picks up new contents when the files change, without restarting the server.
package servingcert

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader loads a certificate and key pair from CertFile and KeyFile and reloads it when
// either file's modification time or size changes. Checks happen on TLS handshakes, at most
// once per CheckInterval. A change that does not load (a half-written pair) keeps the
// previous certificate until a later check succeeds.
type Reloader struct {
	CertFile, KeyFile string
	// CheckInterval bounds how often the files are stat'ed; one second when zero.
	CheckInterval time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string
	checkedAt time.Time
	lastErr   error
}

// New loads the pair once and returns a Reloader, or an error naming the file that failed.
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{CertFile: certFile, KeyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) fileStamp() (string, error) {
	var stamp string
	for _, name := range []string{r.CertFile, r.KeyFile} {
		st, err := os.Stat(name)
		if err != nil {
			return "", fmt.Errorf("serving certificate: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return stamp, nil
}

// reload loads the pair if the files changed; callers hold no lock.
func (r *Reloader) reload() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return err
	}
	r.mu.Lock()
	same := stamp == r.stamp && r.cert != nil
	r.mu.Unlock()
	if same {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	if err != nil {
		return fmt.Errorf("serving certificate %s / key %s: %w", r.CertFile, r.KeyFile, err)
	}
	r.mu.Lock()
	r.cert, r.stamp = &cert, stamp
	r.mu.Unlock()
	return nil
}

// GetCertificate is a tls.Config GetCertificate callback returning the current pair.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	interval := r.CheckInterval
	if interval == 0 {
		interval = time.Second
	}
	r.mu.Lock()
	due := time.Since(r.checkedAt) >= interval
	if due {
		r.checkedAt = time.Now()
	}
	r.mu.Unlock()
	if due {
		err := r.reload()
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert == nil {
		return nil, fmt.Errorf("no serving certificate loaded: %w", r.lastErr)
	}
	return r.cert, nil
}

// Err returns the error of the last reload attempt, nil when it succeeded (for readiness
// and logs).
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}
