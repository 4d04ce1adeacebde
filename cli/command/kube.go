package command

import (
	"context"
	"fmt"

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
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
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
