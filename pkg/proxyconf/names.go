package proxyconf

// AnnInject turns injection on or off for a namespace, workload or pod: enabled, ingress or
// disabled. The most specific level wins. The injector writes pods by it and the CNI plugin
// reads it to leave pods that are out of the mesh alone.
const AnnInject = "linkerd.io/inject"

// InjectDisabled is AnnInject's value that keeps a pod out of the mesh.
const InjectDisabled = "disabled"

// Names of the injected containers, which the injector writes and the CNI plugin and
// `linkerd uninject` look for.
const (
	// ProxyContainer is the proxy's container (or native sidecar init container).
	ProxyContainer = "linkerd-proxy"
	// InitContainer is proxy-init's init container, which installs the rules itself.
	InitContainer = "linkerd-init"
	// NetworkValidatorContainer is the init container injected instead of InitContainer
	// when the CNI plugin installs the rules: it checks that redirection works.
	NetworkValidatorContainer = "linkerd-network-validator"
)
