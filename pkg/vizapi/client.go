package vizapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Paths of the API's methods, below the server's root.
const (
	PathStatSummary  = "/api/v1/StatSummary"
	PathEdges        = "/api/v1/Edges"
	PathTopRoutes    = "/api/v1/TopRoutes"
	PathListPods     = "/api/v1/ListPods"
	PathListServices = "/api/v1/ListServices"
)

// ServiceProxyPath is the path, on the Kubernetes API server, of the service proxy to
// metrics-api's API port in namespace ns (Service metrics-api, port "http").
func ServiceProxyPath(ns string) string {
	return "/api/v1/namespaces/" + ns + "/services/metrics-api:http/proxy"
}

// ErrNotFound is wrapped by the client's errors when the server answered 404 (for
// example, the API server's service proxy when metrics-api is not installed).
var ErrNotFound = errors.New("not found")

// Client calls a metrics-api server. BaseURL is where the server's root is, e.g.
// "http://127.0.0.1:8085" or an API server's URL joined with ServiceProxyPath.
type Client struct {
	HTTP    *http.Client
	BaseURL string
}

// StatSummary calls StatSummary.
func (c *Client) StatSummary(ctx context.Context, req *StatSummaryRequest) (*StatSummaryResponse, error) {
	var rsp StatSummaryResponse
	return &rsp, c.call(ctx, PathStatSummary, req, &rsp)
}

// Edges calls Edges.
func (c *Client) Edges(ctx context.Context, req *EdgesRequest) (*EdgesResponse, error) {
	var rsp EdgesResponse
	return &rsp, c.call(ctx, PathEdges, req, &rsp)
}

// TopRoutes calls TopRoutes.
func (c *Client) TopRoutes(ctx context.Context, req *TopRoutesRequest) (*TopRoutesResponse, error) {
	var rsp TopRoutesResponse
	return &rsp, c.call(ctx, PathTopRoutes, req, &rsp)
}

// ListPods calls ListPods.
func (c *Client) ListPods(ctx context.Context, req *ListPodsRequest) (*ListPodsResponse, error) {
	var rsp ListPodsResponse
	return &rsp, c.call(ctx, PathListPods, req, &rsp)
}

// ListServices calls ListServices.
func (c *Client) ListServices(ctx context.Context, req *ListServicesRequest) (*ListServicesResponse, error) {
	var rsp ListServicesResponse
	return &rsp, c.call(ctx, PathListServices, req, &rsp)
}

// StatInbound calls StatInbound.
func (c *Client) StatInbound(ctx context.Context, req *RouteStatsRequest) (*StatInboundResponse, error) {
	var rsp StatInboundResponse
	return &rsp, c.call(ctx, PathStatInbound, req, &rsp)
}

// StatOutbound calls StatOutbound.
func (c *Client) StatOutbound(ctx context.Context, req *RouteStatsRequest) (*StatOutboundResponse, error) {
	var rsp StatOutboundResponse
	return &rsp, c.call(ctx, PathStatOutbound, req, &rsp)
}

func (c *Client) call(ctx context.Context, path string, req, rsp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encoding request: %w", path, err)
	}
	url := strings.TrimSuffix(c.BaseURL, "/") + path
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	h := c.HTTP
	if h == nil {
		h = http.DefaultClient
	}
	hrsp, err := h.Do(hreq)
	if err != nil {
		return fmt.Errorf("metrics-api %s: %w", path, err)
	}
	defer hrsp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hrsp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("metrics-api %s: reading response: %w", path, err)
	}
	if hrsp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		// The Kubernetes API server's service proxy answers its own failures (no such
		// service, no endpoints) with a Status object: keep its message.
		var status struct {
			Kind    string `json:"kind"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &status) == nil && status.Kind == "Status" && status.Message != "" {
			msg = "API server: " + status.Message
		}
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		err := fmt.Errorf("metrics-api %s: HTTP %d: %s", path, hrsp.StatusCode, msg)
		if hrsp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w (%w)", err, ErrNotFound)
		}
		return err
	}
	if err := json.Unmarshal(data, rsp); err != nil {
		return fmt.Errorf("metrics-api %s: decoding response: %w", path, err)
	}
	return nil
}
