package diagnostics

import (
	"context"
	"crypto/x509"
	"fmt"
	"github.com/l5d-go/l5d/pkg/certs"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ProxyIdentity is what a proxy's admin server tells about its mTLS certificate. The
// proxy keeps its key and certificate in memory and does not serve the certificate, so
// only its expiry and refresh count are known.
type ProxyIdentity struct {
	// Expires is the current certificate's NotAfter; zero when the proxy has none yet.
	Expires time.Time
	// Refreshes counts the certificates obtained from the Identity service.
	Refreshes uint64
}

// Identity reads the identity metrics of the proxy whose admin server is at adminAddr.
func Identity(ctx context.Context, adminAddr string) (ProxyIdentity, error) {
	body, err := Metrics(ctx, adminAddr)
	if err != nil {
		return ProxyIdentity{}, err
	}
	return ParseIdentity(body)
}

// ParseIdentity extracts identity_cert_expiration_timestamp_seconds and
// identity_cert_refresh_count from a Prometheus text exposition. A missing expiry
// metric means the address is not a meshed proxy with identity enabled.
func ParseIdentity(metrics []byte) (ProxyIdentity, error) {
	var id ProxyIdentity
	found := false
	for n, line := range strings.Split(string(metrics), "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		switch name {
		case "identity_cert_expiration_timestamp_seconds":
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || v < 0 || v > 1e11 {
				return ProxyIdentity{}, fmt.Errorf("line %d: bad certificate expiry %q", n+1, value)
			}
			if v > 0 {
				id.Expires = time.Unix(int64(v), 0).UTC()
			}
			found = true
		case "identity_cert_refresh_count", "identity_cert_refresh_count_total":
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || v < 0 || v > 1e15 {
				return ProxyIdentity{}, fmt.Errorf("line %d: bad refresh count %q", n+1, value)
			}
			id.Refreshes = uint64(v)
		}
	}
	if !found {
		return ProxyIdentity{}, fmt.Errorf("no identity_cert_expiration_timestamp_seconds metric: not a proxy with identity enabled")
	}
	return id, nil
}

// Certificate fetches the proxy's certificate chain (leaf first) from its admin server's
// /identity/certificate; ok is false when the proxy has none yet (404).
func Certificate(ctx context.Context, adminAddr string) (chain []*x509.Certificate, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+adminAddr+"/identity/certificate", nil)
	if err != nil {
		return nil, false, fmt.Errorf("admin address %q: %w", adminAddr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("fetching %s: %w", req.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("fetching %s: %s", req.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", req.URL, err)
	}
	chain, err = certs.ParseCertificatesPEM(body)
	if err != nil || len(chain) == 0 {
		return nil, false, fmt.Errorf("%s: not a PEM certificate chain: %v", req.URL, err)
	}
	return chain, true, nil
}
