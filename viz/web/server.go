// Package web is the viz dashboard's server: it serves the dashboard's embedded pages,
// relays the dashboard's metrics questions to the metrics-api, streams taps from the tap
// API, and reports the health of the control plane and extensions. It answers only
// requests whose Host matches EnforcedHost (protection against DNS rebinding).
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/pkg/vizapi"
)

//go:embed static
var static embed.FS

// DefaultEnforcedHost is the Host pattern Linkerd's web enforces by default: the web
// Service's in-cluster names and loopback (through a port-forward or the CLI's relay),
// with any port.
const DefaultEnforcedHost = `^(localhost|127\.0\.0\.1|\[::1\]|web\.linkerd-viz\.svc\.cluster\.local|web\.linkerd-viz\.svc|web\.linkerd-viz)(:\d+)?$`

// MetricsMethods are the metrics-api methods the dashboard may call through the server.
var MetricsMethods = []string{"StatSummary", "Edges", "TopRoutes", "ListPods", "ListServices"}

// Server serves the dashboard.
type Server struct {
	// MetricsAPI is the metrics-api's root URL, e.g. http://metrics-api.linkerd-viz.svc:8085.
	MetricsAPI *url.URL
	// MetricsTransport carries the relayed metrics-api calls; nil means the default.
	MetricsTransport http.RoundTripper
	// Tap is a REST client of the Kubernetes API server through which taps are started
	// (the tap API's RBAC applies to its credentials).
	Tap rest.Interface
	// Kube reads the pods of the namespaces listed in Health.
	Kube kubernetes.Interface
	// Health lists the namespaces whose pods make the health view: the control plane's
	// and the extensions' (e.g. linkerd, linkerd-viz).
	Health []string
	// EnforcedHost must match a request's Host (port included) for it to be served.
	EnforcedHost *regexp.Regexp
	// Log receives the server's errors; nil means slog.Default().
	Log *slog.Logger
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	mux := http.NewServeMux()
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	mux.Handle("GET /", http.FileServerFS(files))
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(s.MetricsAPI)
			r.Out.Host = s.MetricsAPI.Host
			r.Out.Header.Del("Cookie")
		},
		Transport: s.MetricsTransport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.Log.Error("calling the metrics-api", "path", r.URL.Path, "err", err)
			http.Error(w, "metrics-api: "+err.Error(), http.StatusBadGateway)
		},
	}
	for _, m := range MetricsMethods {
		mux.Handle("POST /api/v1/"+m, proxy)
	}
	mux.HandleFunc("POST /api/tap", s.tap)
	mux.HandleFunc("GET /api/health", s.health)
	return s.enforceHost(mux)
}

// enforceHost refuses requests whose Host does not match s.EnforcedHost.
func (s *Server) enforceHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.EnforcedHost == nil || !s.EnforcedHost.MatchString(r.Host) {
			http.Error(w, fmt.Sprintf("host %q does not match the enforced host /%v/ and is refused "+
				"(protection against DNS rebinding; see the web component's -enforced-host)", r.Host, s.EnforcedHost),
				http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tap starts a tap with the JSON vizapi.TapByResourceRequest of the body and streams its
// events, one protobuf-JSON TapEvent per line, until the tap ends or the caller leaves.
func (s *Server) tap(w http.ResponseWriter, r *http.Request) {
	var req vizapi.TapByResourceRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad tap request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := vizapi.TapPath(req.Target.Resource); err != nil {
		http.Error(w, "bad tap request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stream, err := vizapi.Tap(ctx, s.Tap, req)
	if err != nil {
		s.Log.Info("tap refused", "target", req.Target.Resource, "err", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer stream.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl := http.NewResponseController(w)
	_ = fl.Flush()
	for {
		ev, err := stream.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.Log.Info("tap ended", "target", req.Target.Resource, "err", err)
			}
			return
		}
		line, err := protojson.Marshal(ev)
		if err != nil {
			s.Log.Error("encoding a tap event", "err", err)
			return
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return
		}
		if err := fl.Flush(); err != nil {
			return
		}
	}
}

// ComponentHealth is one pod of the health view.
type ComponentHealth struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Component string `json:"component"`
	Phase     string `json:"phase"`
	Ready     bool   `json:"ready"`
	Meshed    bool   `json:"meshed"`
	Restarts  int32  `json:"restarts"`
}

// health answers the pods of the Health namespaces, their readiness and whether they
// run a proxy, as a JSON array sorted by namespace and pod.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	out := []ComponentHealth{}
	for _, ns := range s.Health {
		pods, err := s.Kube.CoreV1().Pods(ns).List(r.Context(), metav1.ListOptions{})
		if err != nil {
			http.Error(w, fmt.Sprintf("listing the pods of namespace %s: %v", ns, err), http.StatusBadGateway)
			return
		}
		for _, p := range pods.Items {
			out = append(out, podHealth(&p))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Pod < out[j].Pod
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func podHealth(p *corev1.Pod) ComponentHealth {
	h := ComponentHealth{Namespace: p.Namespace, Pod: p.Name, Phase: string(p.Status.Phase)}
	h.Component = p.Labels["linkerd.io/control-plane-component"]
	if h.Component == "" {
		h.Component = p.Labels["component"]
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			h.Ready = true
		}
	}
	for _, c := range p.Spec.Containers {
		if c.Name == proxyconf.ProxyContainer {
			h.Meshed = true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == proxyconf.ProxyContainer {
			h.Meshed = true
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		h.Restarts += cs.RestartCount
	}
	return h
}
