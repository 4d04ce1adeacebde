// Package annotations names the Linkerd annotations and injected container names that more
// than one component reads: the injector writes pods with them, and the CNI plugin reads
// the same keys to install the same redirect rules linkerd-init would have. The names are
// Linkerd's, so manifests written for Linkerd work unchanged.
package annotations

const (
	// Inject turns injection on or off for a namespace, workload or pod: enabled, ingress
	// or disabled. The most specific level wins.
	Inject = "linkerd.io/inject"
	// InjectDisabled is Inject's value that keeps a pod out of the mesh.
	InjectDisabled = "disabled"

	// SkipInboundPorts lists inbound ports and ranges that bypass the proxy.
	SkipInboundPorts = "config.linkerd.io/skip-inbound-ports"
	// SkipOutboundPorts lists outbound ports and ranges that bypass the proxy.
	SkipOutboundPorts = "config.linkerd.io/skip-outbound-ports"
	// SkipSubnets lists CIDR subnets whose connections, either way, bypass the proxy.
	SkipSubnets = "config.linkerd.io/skip-subnets"
	// ProxyUID is the user the proxy runs as; its own connections are never redirected.
	ProxyUID = "config.linkerd.io/proxy-uid"
)

// Names of the injected containers.
const (
	// ProxyContainer is the proxy's container (or native sidecar init container).
	ProxyContainer = "linkerd-proxy"
	// InitContainer is proxy-init's init container, which installs the rules itself.
	InitContainer = "linkerd-init"
	// NetworkValidatorContainer is the init container injected instead of InitContainer
	// when the CNI plugin installs the rules: it checks that redirection works.
	NetworkValidatorContainer = "linkerd-network-validator"
)
