package k8s

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// KubeconfigFlag is the name of the flag RegisterFlags adds.
const KubeconfigFlag = "kubeconfig"

// Config says how to reach the API server.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the in-cluster service
	// account.
	Kubeconfig string
	// Context selects a kubeconfig context; empty means the file's current context.
	Context string
	// UserAgent identifies the component to the API server (for example
	// "linkerd-destination"); client-go's default when empty.
	UserAgent string
	// QPS and Burst bound the client's request rate; client-go's defaults when zero.
	QPS   float32
	Burst int
}

// RegisterFlags adds -kubeconfig to fs and returns the Config it fills.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.Kubeconfig, KubeconfigFlag, "",
		"path to a kubeconfig file; empty to use the in-cluster service account")
	return c
}

// RESTConfig returns the client configuration: from the kubeconfig file when one is set,
// otherwise from the in-cluster service account. The error says which source failed and
// how to pick the other.
func (c *Config) RESTConfig() (*rest.Config, error) {
	var cfg *rest.Config
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("-%s: %w", KubeconfigFlag, err)
		}
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Context}
		var err error
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("-%s %s: %w", KubeconfigFlag, c.Kubeconfig, err)
		}
	} else {
		var err error
		cfg, err = rest.InClusterConfig()
		if err != nil {
			if errors.Is(err, rest.ErrNotInCluster) {
				return nil, fmt.Errorf("not running in a Kubernetes pod and -%s is not set: %w", KubeconfigFlag, err)
			}
			return nil, fmt.Errorf("in-cluster Kubernetes configuration: %w", err)
		}
	}
	if c.UserAgent != "" {
		cfg.UserAgent = c.UserAgent
	}
	if c.QPS > 0 {
		cfg.QPS = c.QPS
	}
	if c.Burst > 0 {
		cfg.Burst = c.Burst
	}
	return cfg, nil
}

// Clients are the Kubernetes clients a component uses, built from one configuration.
type Clients struct {
	// Config is the configuration the clients were built from, for building further
	// clients (such as generated CRD clientsets).
	Config *rest.Config
	// Kube is the typed clientset for built-in kinds.
	Kube kubernetes.Interface
	// Dynamic reads and writes any kind, including CRDs, as unstructured objects.
	Dynamic dynamic.Interface
}

// NewClients builds the typed and dynamic clients for cfg. It does not contact the API
// server.
func NewClients(cfg *rest.Config) (*Clients, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes client for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building dynamic Kubernetes client for %s: %w", cfg.Host, err)
	}
	return &Clients{Config: cfg, Kube: kube, Dynamic: dyn}, nil
}

// Clients is RESTConfig followed by NewClients.
func (c *Config) Clients() (*Clients, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	return NewClients(cfg)
}

// LogToSlog sends client-go's own log output (klog) through l, so a component's logs
// keep one format.
func LogToSlog(l *slog.Logger) {
	klog.SetSlogLogger(l)
}
