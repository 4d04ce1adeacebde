// Package vizprom queries the viz extension's Prometheus from outside the cluster, through
// the Kubernetes API server's service proxy
// (/api/v1/namespaces/<viz ns>/services/prometheus:admin-http/proxy/...), so that the CLI
// needs no port-forward: the caller's kubeconfig credentials and RBAC (services/proxy)
// decide who may query. It uses Prometheus' own Go API client.
package vizprom

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// Service and port name of the chart's Prometheus, and the scrape job of the proxies'
// admin ports in its configuration.
const (
	Service  = "prometheus"
	PortName = "admin-http"
	ProxyJob = "linkerd-proxy"
)

// Client queries one Prometheus behind the API server.
type Client struct {
	api  promv1.API
	http *http.Client
	base string
}

// ProxyPath is the API server path of the viz Prometheus's HTTP API root in namespace ns.
func ProxyPath(ns string) string {
	return fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s/proxy", ns, Service, PortName)
}

// New returns a client for the Prometheus of the viz extension installed in namespace ns,
// reached with cfg's server and credentials.
func New(cfg *rest.Config, ns string) (*Client, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return NewForURL(strings.TrimSuffix(cfg.Host, "/")+ProxyPath(ns), hc)
}

// NewForURL returns a client for the Prometheus whose HTTP API root is base (e.g.
// "http://127.0.0.1:9090"), reached with hc.
func NewForURL(base string, hc *http.Client) (*Client, error) {
	c, err := api.NewClient(api.Config{Address: base, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", base, err)
	}
	return &Client{api: promv1.NewAPI(c), http: hc, base: base}, nil
}

// Query evaluates an instant PromQL query now and returns its samples; a query whose result
// is not a vector is an error.
func (c *Client) Query(ctx context.Context, q string) (model.Vector, error) {
	v, _, _, err := c.api.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus query %q: result is a %s, not a vector", q, v.Type())
	}
	return vec, nil
}

// Ready reports whether Prometheus answers its readiness endpoint (/-/ready) with 200.
func (c *Client) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/-/ready", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus readiness: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("prometheus readiness: %s", resp.Status)
	}
	return nil
}

// ScrapedProxies returns "namespace/pod" of every proxy whose last scrape succeeded
// (up{job="linkerd-proxy"} is 1), in namespace ns, or all namespaces when ns is empty.
func (c *Client) ScrapedProxies(ctx context.Context, ns string) (map[string]bool, error) {
	q := fmt.Sprintf(`up{job=%q}`, ProxyJob)
	if ns != "" {
		q = fmt.Sprintf(`up{job=%q,namespace=%q}`, ProxyJob, ns)
	}
	vec, err := c.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for _, s := range vec {
		if s.Value == 1 {
			up[string(s.Metric["namespace"])+"/"+string(s.Metric["pod"])] = true
		}
	}
	return up, nil
}
