package command

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/cli/manifest"
	"github.com/l5d-go/l5d/deploy"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// readInputs reads the manifests named by args (files, directories, URLs, - for stdin).
func readInputs(c *cobra.Command, args []string, recursive bool) (io.Reader, error) {
	b, err := manifest.Read(contextOf(c), args, recursive, c.InOrStdin(), &http.Client{Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// overrideFlags are the `linkerd inject` flags that set one configuration annotation each,
// with Linkerd's flag names.
var overrideFlags = []struct{ flag, annotation, usage string }{
	{"proxy-image", proxyconf.AnnProxyImage, "Linkerd proxy container image name"},
	{"proxy-version", proxyconf.AnnProxyVersion, "tag of the Linkerd proxy image"},
	{"init-image", proxyconf.AnnInitImage, "Linkerd init container image name"},
	{"init-image-version", proxyconf.AnnInitImageVersion, "Linkerd init container image version"},
	{"image-pull-policy", proxyconf.AnnImagePullPolicy, "image pull policy of the proxy and init containers (Always, IfNotPresent, Never)"},
	{"debug-image", proxyconf.AnnDebugImage, "Linkerd debug container image name"},
	{"debug-image-version", proxyconf.AnnDebugImageVersion, "Linkerd debug container image version"},
	{"debug-image-pull-policy", proxyconf.AnnDebugImagePullPolicy, "image pull policy of the debug container"},
	{"proxy-uid", proxyconf.AnnProxyUID, "run the proxy under this user ID"},
	{"proxy-gid", proxyconf.AnnProxyGID, "run the proxy under this group ID"},
	{"proxy-log-level", proxyconf.AnnProxyLogLevel, "log level of the proxy"},
	{"proxy-log-format", proxyconf.AnnProxyLogFormat, "log format of the proxy (plain or json)"},
	{"proxy-cpu-request", proxyconf.AnnProxyCPURequest, "CPU the proxy requests"},
	{"proxy-cpu-limit", proxyconf.AnnProxyCPULimit, "maximum CPU of the proxy"},
	{"proxy-memory-request", proxyconf.AnnProxyMemoryRequest, "memory the proxy requests"},
	{"proxy-memory-limit", proxyconf.AnnProxyMemoryLimit, "maximum memory of the proxy"},
	{"proxy-ephemeral-storage-request", proxyconf.AnnProxyEphemeralRequest, "ephemeral storage the proxy requests"},
	{"proxy-ephemeral-storage-limit", proxyconf.AnnProxyEphemeralLimit, "maximum ephemeral storage of the proxy"},
	{"admin-port", proxyconf.AnnAdminPort, "proxy port serving metrics and probes"},
	{"control-port", proxyconf.AnnControlPort, "proxy port for control (tap)"},
	{"inbound-port", proxyconf.AnnInboundPort, "proxy port for inbound traffic"},
	{"outbound-port", proxyconf.AnnOutboundPort, "proxy port for outbound traffic"},
	{"skip-subnets", proxyconf.AnnSkipSubnets, "CIDRs whose traffic bypasses the proxy"},
	{"opaque-ports", proxyconf.AnnOpaquePorts, "ports (and ranges) proxied without protocol detection"},
	{"close-wait-timeout", proxyconf.AnnCloseWaitTimeout, "sets nf_conntrack_tcp_timeout_close_wait (a duration such as 1m)"},
	{"default-inbound-policy", proxyconf.AnnDefaultInboundPolicy, "default inbound policy of the proxy"},
	{"access-log", proxyconf.AnnAccessLog, "proxy access log format (apache or json)"},
	{"wait-before-exit-seconds", proxyconf.AnnWaitBeforeExitSeconds, "seconds the proxy waits in preStop before exiting"},
	{"shutdown-grace-period", proxyconf.AnnShutdownGracePeriod, "grace period of the proxy's shutdown"},
	{"outbound-connect-timeout", proxyconf.AnnOutboundConnectTimeout, "outbound TCP connect timeout of the proxy"},
	{"inbound-connect-timeout", proxyconf.AnnInboundConnectTimeout, "inbound TCP connect timeout of the proxy"},
}

// boolOverrideFlags set a boolean annotation to "true" when given.
var boolOverrideFlags = []struct{ flag, annotation, usage string }{
	{"enable-debug-sidecar", proxyconf.AnnEnableDebugSidecar, "inject a debug sidecar for data plane debugging"},
	{"enable-external-profiles", proxyconf.AnnEnableExternalProfiles, "enable service profiles for non-Kubernetes services"},
}

// overrides reads the override flags that were given into annotations.
func overrides(c *cobra.Command) (map[string]string, error) {
	ann := map[string]string{}
	f := c.Flags()
	for _, o := range overrideFlags {
		if f.Changed(o.flag) {
			v, _ := f.GetString(o.flag)
			if strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf("--%s: empty value", o.flag)
			}
			ann[o.annotation] = v
		}
	}
	for _, o := range boolOverrideFlags {
		if f.Changed(o.flag) {
			v, _ := f.GetBool(o.flag)
			ann[o.annotation] = strconv.FormatBool(v)
		}
	}
	if f.Changed("native-sidecar") {
		v, _ := f.GetBool("native-sidecar")
		ann[proxyconf.AnnNativeSidecar] = strconv.FormatBool(v)
	}
	return ann, nil
}

func injectCmd(g *globals) *cobra.Command {
	var (
		o           manifest.InjectOptions
		anchorsFile string
		recursive   bool
	)
	c := &cobra.Command{
		Use:   "inject FILE|DIR|URL|- ...",
		Short: "Add the Linkerd proxy to Kubernetes configs",
		Long: "inject annotates the pod templates of workloads with linkerd.io/inject: enabled so the\n" +
			"proxy-injector adds the proxy; with --manual it adds the proxy itself.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ann, err := overrides(c)
			if err != nil {
				return err
			}
			o.Annotations = ann
			if o.Manual {
				anchors, chartValues, err := controlPlaneConfig(c, g, anchorsFile)
				if err != nil {
					return err
				}
				// Inject as the installed webhook does: the settings its chart gives it.
				chartValues["identityTrustAnchorsPEM"] = anchors
				args, err := install.InjectorArgs(chartValues, g.namespace)
				if err != nil {
					return fmt.Errorf("the control plane's injection settings: %w", err)
				}
				v, err := inject.ValuesFromArgs(args)
				if err != nil {
					return err
				}
				v.CreatedBy = "linkerd/cli " + Version
				v.IdentityTrustAnchorsPEM = anchors
				o.Values = &v
			}
			in, err := readInputs(c, args, recursive)
			if err != nil {
				return err
			}
			return manifest.Transform(in, c.OutOrStdout(), c.ErrOrStderr(), manifest.Injector(o))
		},
	}
	f := c.Flags()
	f.BoolVar(&o.Manual, "manual", false, "include the proxy sidecar in the output instead of relying on the proxy-injector")
	f.BoolVar(&o.Ingress, "ingress", false, "inject in ingress mode (linkerd.io/inject: ingress)")
	f.StringVar(&o.SkipInboundPorts, "skip-inbound-ports", "", "inbound ports (and ranges) that bypass the proxy")
	f.StringVar(&o.SkipOutboundPorts, "skip-outbound-ports", "", "outbound ports (and ranges) that bypass the proxy")
	f.StringVar(&anchorsFile, "identity-trust-anchors-file", "", "with --manual: PEM trust anchors instead of reading them from the cluster")
	f.BoolVarP(&recursive, "recursive", "r", false, "read the manifests of directories' subdirectories too")
	for _, o := range overrideFlags {
		short := ""
		if o.flag == "proxy-version" {
			short = "v" // Linkerd's shorthand
		}
		f.StringP(o.flag, short, "", o.usage)
	}
	for _, o := range boolOverrideFlags {
		f.Bool(o.flag, false, o.usage)
	}
	f.Bool("native-sidecar", false, "inject the proxy as a native sidecar (a restartable init container); --native-sidecar=false for a classic one")
	return c
}

// controlPlaneConfig returns the trust anchors and the chart values of the control plane
// that manual injection targets: with file, the anchors it holds and the chart's defaults at
// the CLI's version (what `linkerd install` installs, images ghcr.io/l5d-go/...:<version>);
// else both from the installed control plane's linkerd-config (its images, versions and
// proxy settings).
func controlPlaneConfig(c *cobra.Command, g *globals, file string) (string, map[string]any, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", nil, fmt.Errorf("--identity-trust-anchors-file: %w", err)
		}
		vals, err := install.Overrides(map[string]any{}, install.Options{Version: Version})
		if err != nil {
			return "", nil, err
		}
		return string(b), vals, nil
	}
	k, err := g.client()
	if err != nil {
		return "", nil, fmt.Errorf("--manual reads the trust anchors from the cluster (or give --identity-trust-anchors-file): %w", err)
	}
	cm, err := k.CoreV1().ConfigMaps(g.namespace).Get(contextOf(c), "linkerd-config", metav1.GetOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("reading linkerd-config in namespace %s: %w", g.namespace, err)
	}
	a := cm.Data["identityTrustAnchorsPEM"]
	if a == "" {
		return "", nil, fmt.Errorf("linkerd-config in namespace %s has no identityTrustAnchorsPEM", g.namespace)
	}
	vals, err := deploy.InstalledValues(cm.Data["values"])
	if err != nil {
		return "", nil, err
	}
	return a, vals, nil
}

func uninjectCmd() *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "uninject FILE|DIR|URL|- ...",
		Short: "Remove the Linkerd proxy from Kubernetes configs",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in, err := readInputs(c, args, recursive)
			if err != nil {
				return err
			}
			return manifest.Transform(in, c.OutOrStdout(), c.ErrOrStderr(), manifest.Uninject)
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "read the manifests of directories' subdirectories too")
	return c
}
