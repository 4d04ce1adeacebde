package command

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/strvals"

	"github.com/l5d-go/l5d/deploy"
	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// cniNamespace is where linkerd install-cni puts the DaemonSet, as Linkerd does.
const cniNamespace = "linkerd-cni"

// installCNIOptions are the flags of linkerd install-cni, each a value of the linkerd2-cni
// chart.
type installCNIOptions struct {
	netDir, binDir, logLevel, iptablesMode, priorityClass string
	inPort, outPort                                       int
	proxyUID                                              int64
	skipIn, skipOut, redirect                             string
	useWait                                               bool
	sets                                                  []string
}

func installCNICmd() *cobra.Command {
	var o installCNIOptions
	c := &cobra.Command{
		Use:   "install-cni",
		Short: "Output Kubernetes configs to install the linkerd-cni DaemonSet (chart linkerd2-cni)",
		Long: "Output Kubernetes configs to install the linkerd-cni DaemonSet in the " + cniNamespace + " namespace: on every node\n" +
			"it adds the linkerd-cni plugin to the CNI configuration, which sets up meshed pods' traffic\n" +
			"redirection instead of the linkerd-init container (no NET_ADMIN in application pods).\n" +
			"Then install the control plane with `linkerd install --linkerd-cni-enabled`.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			vals, err := o.values()
			if err != nil {
				return err
			}
			out, err := deploy.Render(deploy.CNIChart, deploy.Options{Namespace: cniNamespace, Values: vals})
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.netDir, "dest-cni-net-dir", "/etc/cni/net.d", "directory on the host where the CNI configuration is")
	f.StringVar(&o.binDir, "dest-cni-bin-dir", "/opt/cni/bin", "directory on the host where the CNI plugins are")
	f.IntVar(&o.inPort, "inbound-port", 4143, "proxy port inbound connections are redirected to")
	f.IntVar(&o.outPort, "outbound-port", 4140, "proxy port outbound connections are redirected to")
	f.Int64Var(&o.proxyUID, "proxy-uid", 2102, "user the proxy runs as; its connections are not redirected")
	f.StringVar(&o.skipIn, "skip-inbound-ports", "", "inbound ports and ranges never redirected, comma-separated")
	f.StringVar(&o.skipOut, "skip-outbound-ports", "", "outbound ports and ranges never redirected, comma-separated")
	f.StringVar(&o.redirect, "redirect-ports", "", "inbound ports to redirect, comma-separated (default: all)")
	f.BoolVar(&o.useWait, "use-wait-flag", false, "make iptables-restore wait for the xtables lock")
	f.StringVar(&o.logLevel, "cni-log-level", "info", "log level of the plugin: debug, info, warn or error")
	f.StringVar(&o.iptablesMode, "iptables-mode", "legacy", "iptables backend: legacy or nft")
	f.StringVar(&o.priorityClass, "priority-class-name", "", "priority class of the DaemonSet's pods")
	f.StringArrayVar(&o.sets, "set", nil, "Helm value override key=value (repeatable)")
	return c
}

// values checks the flags and returns the chart's values; the error names the flag.
func (o installCNIOptions) values() (map[string]any, error) {
	for _, p := range []struct {
		name string
		v    int
	}{{"inbound-port", o.inPort}, {"outbound-port", o.outPort}} {
		if p.v < 1 || p.v > 65535 {
			return nil, fmt.Errorf("--%s %d: must be a TCP port, 1-65535", p.name, p.v)
		}
	}
	for _, l := range []struct{ name, v string }{
		{"skip-inbound-ports", o.skipIn}, {"skip-outbound-ports", o.skipOut}, {"redirect-ports", o.redirect},
	} {
		if _, err := proxyconf.ParsePorts(l.v); err != nil {
			return nil, fmt.Errorf("--%s %q: %w", l.name, l.v, err)
		}
	}
	switch strings.ToLower(o.logLevel) {
	case "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("--cni-log-level %q: must be debug, info, warn or error", o.logLevel)
	}
	if o.iptablesMode != "legacy" && o.iptablesMode != "nft" {
		return nil, fmt.Errorf("--iptables-mode %q: must be legacy or nft", o.iptablesMode)
	}
	vals := map[string]any{
		"linkerdVersion":      Version,
		"destCNINetDir":       o.netDir,
		"destCNIBinDir":       o.binDir,
		"inboundProxyPort":    o.inPort,
		"outboundProxyPort":   o.outPort,
		"proxyUID":            o.proxyUID,
		"ignoreInboundPorts":  o.skipIn,
		"ignoreOutboundPorts": o.skipOut,
		"portsToRedirect":     o.redirect,
		"useWaitFlag":         o.useWait,
		"logLevel":            strings.ToLower(o.logLevel),
		"iptablesMode":        o.iptablesMode,
		"priorityClassName":   o.priorityClass,
	}
	for _, s := range o.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %q: %w", s, err)
		}
	}
	return vals, nil
}
