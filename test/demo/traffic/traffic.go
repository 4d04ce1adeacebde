// Package traffic is the demo's load generator: it requests the front end's pages and
// JSON endpoints at a steady rate and logs a summary line every so many requests.
package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/test/demo/catalog"
	"github.com/l5d-go/l5d/test/demo/tracectx"
)

// Options configure a Generator.
type Options struct {
	// Target is the front end's base URL, e.g. http://web.l5d-demo.svc.cluster.local:8080.
	Target string
	// Rate is the number of requests started per second; it must be positive.
	Rate float64
	// LogEvery is how many completed requests each summary line covers (0: 100).
	LogEvery int
	// Count stops the generator after that many requests; 0 runs until the context ends.
	Count int
	// MaxInFlight bounds the concurrent requests (0: 64); a tick finding that many in
	// flight is skipped and counted.
	MaxInFlight int
	// Path, when set, makes every request a GET of that path (for example "/ready")
	// instead of the rotation over the front end's pages.
	Path string
	// TraceSampleRatio is the share of requests, from 0 to 1, that start a sampled W3C
	// trace (a traceparent header); the others start an unsampled one.
	TraceSampleRatio float64
	// Client sends the requests (nil: a client with a 10s timeout).
	Client *http.Client
	Log    *slog.Logger
}

// Stats are the generator's counts so far.
type Stats struct {
	// Sent is the number of completed requests, Failed those that got no response or a
	// 5xx status, Skipped the ticks dropped because MaxInFlight requests were running.
	Sent    int64 `json:"sent"`
	Failed  int64 `json:"failed"`
	Skipped int64 `json:"skipped"`
	// ByPath counts completed requests per route, e.g. "GET /api/items/{id}".
	ByPath map[string]int64 `json:"byPath"`
	// ByStatus counts completed requests per HTTP status code; "error" counts those that
	// got no response.
	ByStatus map[string]int64 `json:"byStatus"`
}

// Generator sends the demo traffic. Use New.
type Generator struct {
	opts   Options
	base   *url.URL
	ids    []string
	next   atomic.Uint64
	sent   atomic.Int64
	failed atomic.Int64
	skip   atomic.Int64

	mu         sync.Mutex
	byPath     map[string]int64
	byStatus   map[string]int64
	windowFail int64
}

// New checks the options and returns a generator, or an error naming the bad option.
func New(opts Options) (*Generator, error) {
	u, err := url.Parse(opts.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("traffic: target %q is not an http:// or https:// URL with a host", opts.Target)
	}
	if !(opts.Rate > 0) {
		return nil, fmt.Errorf("traffic: rate %v must be a positive number of requests per second", opts.Rate)
	}
	if opts.Path != "" && !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("traffic: path %q must start with /", opts.Path)
	}
	if opts.LogEvery < 0 || opts.Count < 0 || opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("traffic: log-every %d, count %d and max-in-flight %d must not be negative",
			opts.LogEvery, opts.Count, opts.MaxInFlight)
	}
	if !(opts.TraceSampleRatio >= 0 && opts.TraceSampleRatio <= 1) {
		return nil, fmt.Errorf("traffic: trace sample ratio %v must be from 0 to 1", opts.TraceSampleRatio)
	}
	if opts.LogEvery == 0 {
		opts.LogEvery = 100
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 64
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Generator{opts: opts, base: u, ids: catalog.ItemIDs(), byPath: map[string]int64{}, byStatus: map[string]int64{}}, nil
}

// Stats returns the counts so far.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{Sent: g.sent.Load(), Failed: g.failed.Load(), Skipped: g.skip.Load(),
		ByPath: maps.Clone(g.byPath), ByStatus: maps.Clone(g.byStatus)}
}

// Run sends requests at the configured rate until ctx ends or Count requests have
// completed, then waits for the requests in flight. It returns ctx's error when the
// context ended first, nil after Count requests.
func (g *Generator) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / g.opts.Rate))
	defer tick.Stop()
	sem := make(chan struct{}, g.opts.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	var started int
	for {
		if g.opts.Count > 0 && started >= g.opts.Count {
			wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			g.skip.Add(1)
			continue
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.one(ctx)
		}()
	}
}

// request returns the i-th request of the rotation: the page, the item list, one item
// (twice, so ratings see the most calls) and a vote.
// key names the route, e.g. "GET /api/items/{id}".
func (g *Generator) request(i uint64) (method, path, key string, body []byte) {
	if g.opts.Path != "" {
		return http.MethodGet, g.opts.Path, "GET " + g.opts.Path, nil
	}
	id := g.ids[rand.IntN(len(g.ids))]
	switch i % 5 {
	case 0:
		return http.MethodGet, "/", "GET /", nil
	case 1:
		return http.MethodGet, "/api/items", "GET /api/items", nil
	case 4:
		return http.MethodPost, "/api/items/" + id + "/rating", "POST /api/items/{id}/rating",
			fmt.Appendf(nil, `{"stars":%d}`, 1+rand.IntN(5))
	default:
		return http.MethodGet, "/api/items/" + id, "GET /api/items/{id}", nil
	}
}

func (g *Generator) one(ctx context.Context) {
	method, path, key, body := g.request(g.next.Add(1) - 1)
	failed, code := false, "error"
	req, err := http.NewRequestWithContext(ctx, method, g.base.String()+path, bytes.NewReader(body))
	if err == nil {
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Traceparent", tracectx.NewTraceparent(rand.Float64() < g.opts.TraceSampleRatio))
		var resp *http.Response
		resp, err = g.opts.Client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			failed = resp.StatusCode >= 500
			code = strconv.Itoa(resp.StatusCode)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not a failure of the application
		}
		failed = true
		g.opts.Log.Warn("request got no response", "method", method, "path", path, "err", err)
	}
	if failed {
		g.failed.Add(1)
	}
	g.mu.Lock()
	g.byPath[key]++
	g.byStatus[code]++
	if failed {
		g.windowFail++
	}
	n := g.sent.Add(1)
	var logFail int64
	logNow := n%int64(g.opts.LogEvery) == 0
	if logNow {
		logFail, g.windowFail = g.windowFail, 0
	}
	g.mu.Unlock()
	if logNow {
		g.opts.Log.Info("traffic", "sent", n, "last", g.opts.LogEvery, "failed_in_last", logFail,
			"failed_total", g.failed.Load(), "skipped_total", g.skip.Load())
	}
}

// StatsHandler serves g's Stats as JSON on GET, so a test or an operator can read the
// generator's view of the requests (for example through the API server's pod proxy).
func StatsHandler(g *Generator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(g.Stats())
	})
}
