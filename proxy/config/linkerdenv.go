package config

import "github.com/l5d-go/l5d/pkg/proxyconf"

// linkerdInjectorOnly are variables Linkerd's injector writes into every proxy (and l5d's
// does, for pods to be interchangeable) whose behaviour this proxy does not have, with why.
// They are accepted, never an error, and listed in Unsupported: the proxy names those that
// are set in one warning at start. A name the proxy reads (Names) is not listed.
var linkerdInjectorOnly = map[string]string{
	proxyconf.EnvCoresMin: "the proxy's worker count follows LINKERD2_PROXY_CORES or " +
		"LINKERD2_PROXY_CORES_MAX_RATIO; no minimum is applied",
	proxyconf.EnvControlStreamInitialTimeout: "control-plane streams have no first-answer " +
		"timeout: requests wait up to the resolve timeout instead",
	proxyconf.EnvControlStreamIdleTimeout: "control-plane streams are not recycled when idle; " +
		"unused discovery streams are dropped after the discovery idle timeout",
	proxyconf.EnvControlStreamLifetime: "control-plane streams have no maximum lifetime: they " +
		"last until the control plane or the idle timeout ends them",
	proxyconf.EnvInboundAcceptUserTimeout: "TCP_USER_TIMEOUT is not set on accepted " +
		"connections; TCP keepalive (LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE) detects dead peers",
	proxyconf.EnvOutboundConnectUserTimeout: "TCP_USER_TIMEOUT is not set on outbound " +
		"connections; TCP keepalive (LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE) detects dead peers",
	proxyconf.EnvInboundHTTP2KeepAliveInterval: "the proxy's HTTP/2 servers send no " +
		"keep-alive PINGs",
	proxyconf.EnvInboundHTTP2KeepAliveTimeout: "the proxy's HTTP/2 servers send no " +
		"keep-alive PINGs",
	proxyconf.EnvOutboundHTTP2KeepAliveInterval: "the proxy's HTTP/2 servers send no " +
		"keep-alive PINGs",
	proxyconf.EnvOutboundHTTP2KeepAliveTimeout: "the proxy's HTTP/2 servers send no " +
		"keep-alive PINGs",
}

func init() {
	read := map[string]bool{}
	for _, name := range Names() {
		read[name] = true
	}
	for name, why := range linkerdInjectorOnly {
		if _, listed := Unsupported[name]; !listed && !read[name] {
			Unsupported[name] = why
		}
	}
}
