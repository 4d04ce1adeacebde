package diagnostics

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Metrics fetches the Prometheus exposition served on /metrics at a proxy's or a
// control-plane component's admin address (host:port, plain HTTP, as reached with a
// port-forward). A status other than 200 is an error naming the status.
func Metrics(ctx context.Context, adminAddr string) ([]byte, error) {
	url := "http://" + adminAddr + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", adminAddr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: status %s", url, resp.Status)
	}
	return body, nil
}
