// Package metricsapi is the viz metrics API server: it answers StatSummary, Edges,
// TopRoutes, ListPods and ListServices (package api), and l5d's StatInbound and
// StatOutbound, from Prometheus (through the PromQL of package promql) and from the
// cluster cache, over JSON HTTP on /api/v1/<Method>.
package metricsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
)

// Server answers the API. Prom and Cache are required.
type Server struct {
	// Prom queries Prometheus.
	Prom promv1.API
	// Cache lists the cluster's objects.
	Cache *cluster.Cache
	// ClusterDomain completes service authorities (default "cluster.local").
	ClusterDomain string
	// Now is the evaluation time of every query; time.Now when nil.
	Now func() time.Time
	// Log receives request failures; slog.Default when nil.
	Log *slog.Logger
	// Metrics, when set, receives metrics_api_request_duration_seconds{path, code,
	// method}, the time taken to answer each call.
	Metrics prometheus.Registerer
}

// errBadRequest marks errors caused by the request (HTTP 400).
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// Handler serves the API's methods as POSTs of JSON requests. Call it once: it
// registers its metrics with s.Metrics.
func (s *Server) Handler() http.Handler {
	var durations *prometheus.HistogramVec
	if s.Metrics != nil {
		durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "metrics_api_request_duration_seconds",
			Help:    "Time taken to answer metrics API calls, by path, HTTP status and method.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"path", "code", "method"})
		s.Metrics.MustRegister(durations)
	}
	mux := http.NewServeMux()
	add := func(path string, h http.HandlerFunc) {
		var hh http.Handler = h
		if durations != nil {
			hh = promhttp.InstrumentHandlerDuration(durations.MustCurryWith(prometheus.Labels{"path": path}), h)
		}
		mux.Handle("POST "+path, hh)
	}
	add(vizapi.PathStatSummary, handle(s, s.StatSummary))
	add(vizapi.PathEdges, handle(s, s.Edges))
	add(vizapi.PathTopRoutes, handle(s, s.TopRoutes))
	add(vizapi.PathListPods, handle(s, s.ListPods))
	add(vizapi.PathListServices, handle(s, s.ListServices))
	add(vizapi.PathStatInbound, handle(s, s.StatInbound))
	add(vizapi.PathStatOutbound, handle(s, s.StatOutbound))
	return mux
}

func handle[Req, Rsp any](s *Server, method func(context.Context, *Req) (*Rsp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("decoding %s request: %v", r.URL.Path, err), http.StatusBadRequest)
			return
		}
		rsp, err := method(r.Context(), &req)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errBadRequest) {
				code = http.StatusBadRequest
			}
			s.log().Warn("metrics-api request failed", "path", r.URL.Path, "error", err)
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(rsp); err != nil {
			s.log().Debug("writing response", "path", r.URL.Path, "error", err)
		}
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Server) clusterDomain() string {
	if s.ClusterDomain == "" {
		return "cluster.local"
	}
	return s.ClusterDomain
}

// vector evaluates an instant query at s.now().
func (s *Server) vector(ctx context.Context, q string) (model.Vector, error) {
	v, warnings, _, err := s.Prom.Query(ctx, q, s.now())
	if err != nil {
		return nil, fmt.Errorf("prometheus query %s: %w", q, err)
	}
	if len(warnings) > 0 {
		s.log().Debug("prometheus warnings", "query", q, "warnings", warnings)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus query %s: got %s, want a vector", q, v.Type())
	}
	return vec, nil
}

// count converts a sample value to a count, rounding increase()'s extrapolation.
func count(v model.SampleValue) uint64 {
	f := float64(v)
	if math.IsNaN(f) || f <= 0 || math.IsInf(f, 0) {
		return 0
	}
	return uint64(math.Round(f))
}

// validResource checks a resource of a request; what names it in errors.
func validResource(what string, r *vizapi.Resource, allowAll bool) error {
	t, err := vizapi.CanonicalType(r.Type)
	if err != nil {
		return badRequest("%s: %v", what, err)
	}
	if t == vizapi.All && !allowAll {
		return badRequest("%s: type \"all\" is only valid for the selected resource", what)
	}
	if t == vizapi.All && r.Name != "" {
		return badRequest("%s: type \"all\" takes no name", what)
	}
	r.Type = t
	return nil
}
