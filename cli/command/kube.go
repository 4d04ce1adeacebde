package command

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// restConfig loads the kubeconfig named by the global flags (or the default rules),
// impersonating --as/--as-group when set.
func (g *globals) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if g.kubeconfig != "" {
		rules.ExplicitPath = g.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: g.context}
	overrides.AuthInfo.Impersonate = g.as
	overrides.AuthInfo.ImpersonateGroups = g.asGroups
	overrides.ClusterInfo.Server = g.apiAddr
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if g.verbose {
		log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return loggingTransport{rt, log} })
	}
	return cfg, nil
}

// loggingTransport logs each Kubernetes API request at debug level (--verbose).
type loggingTransport struct {
	next http.RoundTripper
	log  *slog.Logger
}

func (l loggingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		l.log.Debug("kubernetes request", "method", r.Method, "url", r.URL.String(), "err", err, "duration", time.Since(start))
		return nil, err
	}
	l.log.Debug("kubernetes request", "method", r.Method, "url", r.URL.String(), "status", resp.StatusCode, "duration", time.Since(start))
	return resp, nil
}

// printProxyVersions prints how many meshed pods (of ns, or all namespaces) run each proxy
// version, from their linkerd.io/proxy-version annotation.
func printProxyVersions(c *cobra.Command, g *globals, ns string) error {
	k, err := g.client()
	if err != nil {
		return err
	}
	pods, err := k.CoreV1().Pods(ns).List(contextOf(c), metav1.ListOptions{LabelSelector: "linkerd.io/control-plane-ns=" + g.namespace})
	if err != nil {
		return fmt.Errorf("listing meshed pods: %w", err)
	}
	count := map[string]int{}
	for _, p := range pods.Items {
		v := p.Annotations["linkerd.io/proxy-version"]
		if v == "" {
			v = "unknown"
		}
		count[v]++
	}
	fmt.Fprintln(c.OutOrStdout(), "Proxy versions:")
	if len(count) == 0 {
		fmt.Fprintln(c.OutOrStdout(), "\tunavailable")
		return nil
	}
	versions := make([]string, 0, len(count))
	for v := range count {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		unit := "pods"
		if count[v] == 1 {
			unit = "pod"
		}
		fmt.Fprintf(c.OutOrStdout(), "\t%s (%d %s)\n", v, count[v], unit)
	}
	return nil
}

func (g *globals) client() (kubernetes.Interface, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// serverVersion is the control plane's version from the linkerd-config ConfigMap's
// app.kubernetes.io/version label, or "unavailable".
func serverVersion(c *cobra.Command, g *globals) string {
	k, err := g.client()
	if err != nil {
		return "unavailable"
	}
	cm, err := k.CoreV1().ConfigMaps(g.namespace).Get(contextOf(c), "linkerd-config", metav1.GetOptions{})
	if err != nil {
		return "unavailable"
	}
	if v := cm.Labels["app.kubernetes.io/version"]; v != "" {
		return v
	}
	return "unavailable"
}

// dynamic returns a dynamic client for the kubeconfig named by the global flags.
func (g *globals) dynamic() (dynamic.Interface, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}

func contextOf(c *cobra.Command) context.Context {
	if ctx := c.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
