package diagnostics

import (
	"context"
	"fmt"
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
