package inject

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// RegisterFlags registers on fs one flag per mesh-wide setting of v, each defaulting to v's
// value: the proxy injector's command line, which the control-plane chart fills from its
// Helm values (proxy.*, proxyInit.*, debugContainer.*, clusterDomain...).
func (v *Values) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&v.ControlPlaneNamespace, "controller-namespace", v.ControlPlaneNamespace, "namespace of the control plane")
	fs.StringVar(&v.ClusterDomain, "cluster-domain", v.ClusterDomain, "cluster DNS domain")
	fs.StringVar(&v.TrustDomain, "identity-trust-domain", v.TrustDomain, "trust domain of workload identities")
	fs.StringVar(&v.ProxyImage, "proxy-image", v.ProxyImage, "proxy image name")
	fs.StringVar(&v.ProxyVersion, "proxy-version", v.ProxyVersion, "proxy image tag")
	fs.StringVar(&v.InitImage, "proxy-init-image", v.InitImage, "proxy-init image name")
	fs.StringVar(&v.InitVersion, "proxy-init-version", v.InitVersion, "proxy-init image tag")
	fs.StringVar(&v.DebugImage, "debug-image", v.DebugImage, "debug sidecar image name")
	fs.StringVar(&v.DebugVersion, "debug-version", v.DebugVersion, "debug sidecar image tag")
	fs.Func("image-pull-policy", "pull policy of the injected images: Always, IfNotPresent or Never (default IfNotPresent)", func(s string) error {
		v.ImagePullPolicy = corev1.PullPolicy(s)
		return nil
	})
	fs.StringVar(&v.CreatedBy, "created-by", v.CreatedBy, "value of the linkerd.io/created-by annotation")
	fs.StringVar(&v.LogLevel, "proxy-log-level", v.LogLevel, "default proxy log filter (LINKERD2_PROXY_LOG)")
	fs.StringVar(&v.LogFormat, "proxy-log-format", v.LogFormat, "default proxy log format: plain or json")
	fs.StringVar(&v.ClusterNetworks, "cluster-networks", v.ClusterNetworks, "cluster pod and service networks (CIDR list)")
	fs.StringVar(&v.DefaultInboundPolicy, "default-inbound-policy", v.DefaultInboundPolicy, "default inbound policy of proxies")
	fs.StringVar(&v.OpaquePorts, "default-opaque-ports", v.OpaquePorts, "default inbound ports without protocol detection")
	fs.StringVar(&v.SkipInboundPorts, "default-skip-inbound-ports", v.SkipInboundPorts, "inbound ports proxy-init never redirects by default")
	fs.StringVar(&v.SkipOutboundPorts, "default-skip-outbound-ports", v.SkipOutboundPorts, "outbound ports proxy-init never redirects by default")
	fs.Int64Var(&v.ProxyUID, "proxy-uid", v.ProxyUID, "user id the proxy runs as")
	fs.BoolVar(&v.Await, "proxy-await", v.Await, "hold a classic sidecar pod's other containers until the proxy is ready (linkerd-await postStart hook)")
	fs.DurationVar(&v.InboundConnectTimeout, "proxy-inbound-connect-timeout", v.InboundConnectTimeout, "default inbound connect timeout of proxies")
	fs.DurationVar(&v.OutboundConnectTimeout, "proxy-outbound-connect-timeout", v.OutboundConnectTimeout, "default outbound connect timeout of proxies")
	fs.StringVar(&v.IptablesMode, "iptables-mode", v.IptablesMode, "iptables backend linkerd-init uses: legacy or nft")
	fs.BoolVar(&v.CNIEnabled, "cni-enabled", v.CNIEnabled, "the linkerd-cni plugin installs the redirect rules: inject the linkerd-network-validator init container instead of linkerd-init")
	fs.Func("proxy-resources", `default requests and limits of the proxy container as JSON ({"requests":{"cpu":"100m"},"limits":{"memory":"250Mi"}}); annotations override each`, func(s string) error {
		return json.Unmarshal([]byte(s), &v.ProxyResources)
	})
	fs.Func("proxy-init-resources", "requests and limits of the linkerd-init container as JSON", func(s string) error {
		v.InitResources = corev1.ResourceRequirements{}
		return json.Unmarshal([]byte(s), &v.InitResources)
	})
}

// ValuesFromArgs returns Linkerd's defaults (DefaultValues) with the settings of an injector
// command line applied: the arguments the control-plane chart renders for its proxy
// injector, so that `linkerd inject --manual` injects as the installed webhook does.
// Arguments naming no injection setting (the webhook's address, its log level...) are
// skipped; a setting with a bad value is an error naming it.
func ValuesFromArgs(args []string) (Values, error) {
	v := DefaultValues()
	fs := flag.NewFlagSet("proxy-injector", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v.RegisterFlags(fs)
	var known []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && fs.Lookup(name) != nil {
			known = append(known, a)
		}
	}
	if err := fs.Parse(known); err != nil {
		return Values{}, fmt.Errorf("proxy injector arguments: %w", err)
	}
	return v, nil
}
