// Package svcrelay relays local HTTP requests to a Service's port through the Kubernetes
// API server's service proxy (/api/v1/namespaces/NS/services/NAME:PORT/proxy/), so that
// `linkerd viz dashboard` needs no port-forward: the caller's credentials and RBAC
// (services/proxy) apply, and the request's Host is passed along unchanged, so a
// server that checks it (the dashboard's -enforced-host) sees the local address the
// browser used.
package svcrelay

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"
)

// Handler returns a handler relaying every request to port of Service ns/name through
// the API server cfg points at.
func Handler(cfg *rest.Config, ns, name, port string, log *slog.Logger) (http.Handler, error) {
	if ns == "" || name == "" || port == "" {
		return nil, fmt.Errorf("svcrelay: namespace, service and port are required (got %q, %q, %q)", ns, name, port)
	}
	host := strings.TrimSuffix(cfg.Host, "/")
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	base, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("svcrelay: API server address %q: %w", cfg.Host, err)
	}
	base.Path = strings.TrimSuffix(base.Path, "/") + fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s/proxy/", ns, name, port)
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("svcrelay: kubernetes transport: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(base)
			r.Out.Host = r.In.Host
			// The API server authenticates the relay with cfg's credentials, never
			// with what the browser sent.
			r.Out.Header.Del("Authorization")
			r.Out.Header.Del("Cookie")
		},
		Transport:     rt,
		FlushInterval: -1, // streams (tap) are relayed as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Error("relaying to the API server", "service", ns+"/"+name, "path", r.URL.Path, "err", err)
			http.Error(w, fmt.Sprintf("relaying to service %s/%s through the API server: %v", ns, name, err), http.StatusBadGateway)
		},
	}, nil
}
