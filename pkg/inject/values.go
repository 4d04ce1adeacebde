package inject

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	corev1 "k8s.io/api/core/v1"
)

// Values is the mesh-wide configuration injection starts from: what linkerd-config holds
// (control-plane namespace, trust domain and anchors, images, proxy defaults). Annotations on
// a namespace and on a pod override the per-proxy parts. DefaultValues gives Linkerd's
// defaults; a caller sets at least IdentityTrustAnchorsPEM.
type Values struct {
	// ControlPlaneNamespace is where linkerd-destination, linkerd-identity and linkerd-policy run.
	ControlPlaneNamespace string
	// ClusterDomain is the cluster's DNS domain ("cluster.local").
	ClusterDomain string
	// TrustDomain is the identity trust domain ("cluster.local").
	TrustDomain string
	// IdentityTrustAnchorsPEM is the PEM text of the trust anchors, put into every proxy verbatim.
	IdentityTrustAnchorsPEM string

	// CreatedBy fills linkerd.io/created-by, e.g. "linkerd/proxy-injector stable-2.12.2".
	CreatedBy string

	// ProxyImage/ProxyVersion, InitImage/InitVersion and DebugImage/DebugVersion name the
	// proxy, proxy-init and debug sidecar images (name and tag); ImagePullPolicy applies to all.
	ProxyImage      string
	ProxyVersion    string
	InitImage       string
	InitVersion     string
	DebugImage      string
	DebugVersion    string
	ImagePullPolicy corev1.PullPolicy

	// ProxyUID is the user the proxy runs as; proxy-init exempts its traffic.
	ProxyUID int64
	// LogLevel and LogFormat are LINKERD2_PROXY_LOG and LINKERD2_PROXY_LOG_FORMAT.
	LogLevel  string
	LogFormat string
	// ClusterNetworks are the pod/service networks (profile and policy networks).
	ClusterNetworks string
	// DefaultInboundPolicy is LINKERD2_PROXY_INBOUND_DEFAULT_POLICY.
	DefaultInboundPolicy string
	// OpaquePorts are the default inbound ports without protocol detection.
	OpaquePorts string
	// SkipInboundPorts and SkipOutboundPorts are proxy-init's default skip lists; the proxy's
	// own control and admin ports are always added to the inbound list.
	SkipInboundPorts  string
	SkipOutboundPorts string
	// InboundConnectTimeout and OutboundConnectTimeout are the proxies' connect timeouts.
	InboundConnectTimeout  time.Duration
	OutboundConnectTimeout time.Duration
	// Await adds the linkerd-await postStart hook (classic sidecars only).
	Await bool
	// NativeSidecar injects the proxy as a restartable init container (Kubernetes >= 1.29)
	// unless a proxy-enable-native-sidecar annotation says otherwise.
	NativeSidecar bool
	// InitResources are the linkerd-init container's requests and limits.
	InitResources corev1.ResourceRequirements
	// ProxyResources are the proxy container's default requests and limits; each
	// config.linkerd.io/proxy-{cpu,memory,ephemeral-storage}-{request,limit} annotation
	// overrides its own entry.
	ProxyResources corev1.ResourceRequirements
	// IptablesMode is the iptables backend linkerd-init uses (--iptables-mode): "legacy" or
	// "nft" (Helm's proxyInit.iptablesMode). Nodes whose kernel has only nf_tables need "nft".
	IptablesMode string
	// CNIEnabled says the linkerd-cni plugin installs the redirect rules (Helm's
	// cniEnabled, linkerd install --linkerd-cni-enabled): pods get the
	// linkerd-network-validator init container, which needs no capability, instead of
	// linkerd-init.
	CNIEnabled bool
}

// Linkerd's default values.
const (
	DefaultControlPlaneNamespace = "linkerd"
	DefaultClusterDomain         = "cluster.local"
	DefaultVersion               = "stable-2.12.2"
	DefaultProxyImage            = "cr.l5d.io/linkerd/proxy"
	DefaultInitImage             = "cr.l5d.io/linkerd/proxy-init"
	DefaultInitVersion           = "v2.0.0"
	DefaultDebugImage            = "cr.l5d.io/linkerd/debug"
	DefaultProxyUID              = 2102
	DefaultLogLevel              = "warn,linkerd=info"
	DefaultLogFormat             = "plain"
	DefaultClusterNetworks       = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16"
	DefaultInboundPolicy         = "all-unauthenticated"
	DefaultIptablesMode          = "legacy"

	// Ports of the injected proxy: inbound, outbound, control (tap) and admin.
	ProxyInboundPort  = 4143
	ProxyOutboundPort = 4140
	ProxyControlPort  = 4190
	ProxyAdminPort    = 4191
)

// DefaultValues returns Linkerd's defaults with native sidecars on. IdentityTrustAnchorsPEM
// is empty and must be set.
func DefaultValues() Values {
	q := func(s string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: mustQuantity("100m"), corev1.ResourceMemory: mustQuantity(s)}
	}
	return Values{
		ControlPlaneNamespace:  DefaultControlPlaneNamespace,
		ClusterDomain:          DefaultClusterDomain,
		TrustDomain:            DefaultClusterDomain,
		CreatedBy:              "linkerd/proxy-injector " + DefaultVersion,
		ProxyImage:             DefaultProxyImage,
		ProxyVersion:           DefaultVersion,
		InitImage:              DefaultInitImage,
		InitVersion:            DefaultInitVersion,
		DebugImage:             DefaultDebugImage,
		DebugVersion:           DefaultVersion,
		ImagePullPolicy:        corev1.PullIfNotPresent,
		ProxyUID:               DefaultProxyUID,
		LogLevel:               DefaultLogLevel,
		LogFormat:              DefaultLogFormat,
		ClusterNetworks:        DefaultClusterNetworks,
		DefaultInboundPolicy:   DefaultInboundPolicy,
		OpaquePorts:            proxyconf.DefaultOpaquePorts,
		SkipInboundPorts:       proxyconf.DefaultSkipPorts,
		SkipOutboundPorts:      proxyconf.DefaultSkipPorts,
		InboundConnectTimeout:  100 * time.Millisecond,
		OutboundConnectTimeout: 1000 * time.Millisecond,
		Await:                  true,
		NativeSidecar:          true,
		InitResources:          corev1.ResourceRequirements{Requests: q("20Mi"), Limits: q("20Mi")},
		IptablesMode:           DefaultIptablesMode,
	}
}

// Validate reports the first setting that cannot produce a working proxy, naming it.
func (v *Values) Validate() error {
	var errs []error
	req := func(name, val string) {
		if strings.TrimSpace(val) == "" {
			errs = append(errs, fmt.Errorf("%s must be set", name))
		}
	}
	req("control-plane namespace", v.ControlPlaneNamespace)
	req("cluster domain", v.ClusterDomain)
	req("trust domain", v.TrustDomain)
	req("identity trust anchors", v.IdentityTrustAnchorsPEM)
	req("proxy image", v.ProxyImage)
	req("proxy-init image", v.InitImage)
	if !strings.Contains(v.IdentityTrustAnchorsPEM, "-----BEGIN CERTIFICATE-----") && v.IdentityTrustAnchorsPEM != "" {
		errs = append(errs, errors.New("identity trust anchors: no PEM CERTIFICATE block"))
	}
	if v.ProxyUID < 0 {
		errs = append(errs, fmt.Errorf("proxy uid %d: must not be negative", v.ProxyUID))
	}
	if err := checkPolicy(v.DefaultInboundPolicy); err != nil {
		errs = append(errs, fmt.Errorf("default inbound policy: %w", err))
	}
	if err := checkLogFormat(v.LogFormat); err != nil {
		errs = append(errs, fmt.Errorf("proxy log format: %w", err))
	}
	for name, list := range map[string]string{"opaque ports": v.OpaquePorts, "skip inbound ports": v.SkipInboundPorts, "skip outbound ports": v.SkipOutboundPorts} {
		if _, err := proxyconf.ParsePorts(list); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if v.IptablesMode != "legacy" && v.IptablesMode != "nft" {
		errs = append(errs, fmt.Errorf("iptables mode %q: not legacy or nft", v.IptablesMode))
	}
	switch v.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("image pull policy %q: not Always, IfNotPresent or Never", v.ImagePullPolicy))
	}
	if v.InboundConnectTimeout <= 0 || v.OutboundConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("connect timeouts %v (inbound) and %v (outbound) must be positive", v.InboundConnectTimeout, v.OutboundConnectTimeout))
	}
	for name, req := range v.ProxyResources.Requests {
		if lim, ok := v.ProxyResources.Limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("proxy %s request %s exceeds its limit %s", name, req.String(), lim.String()))
		}
	}
	if _, err := proxyconf.ParseNetworks(v.ClusterNetworks); err != nil {
		errs = append(errs, fmt.Errorf("cluster networks: %w", err))
	}
	return errors.Join(errs...)
}

// TrustRootSHA256 is the value of linkerd.io/trust-root-sha256 for the anchors (see
// certs.TrustRootSHA256).
func (v *Values) TrustRootSHA256() string {
	return certs.TrustRootSHA256([]byte(v.IdentityTrustAnchorsPEM))
}

var validPolicies = []string{"all-unauthenticated", "all-authenticated", "cluster-unauthenticated", "cluster-authenticated", "deny"}

func checkPolicy(p string) error {
	for _, ok := range validPolicies {
		if p == ok {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", p, strings.Join(validPolicies, ", "))
}

func checkLogFormat(f string) error {
	if f == "plain" || f == "json" {
		return nil
	}
	return fmt.Errorf("%q is not plain or json", f)
}
