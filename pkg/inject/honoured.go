package inject

import "github.com/l5d-go/l5d/pkg/proxyconf"

// ConfigAnnotation is one configuration annotation the injector honours: where it leads.
type ConfigAnnotation struct {
	// Key is the annotation, on a namespace or a pod template.
	Key string
	// Example is a valid value that differs from the default.
	Example string
	// Env lists the LINKERD2_PROXY_* variables of the proxy container the annotation sets
	// (as Linkerd's injector does); empty when it changes the pod spec only.
	Env []string
	// Spec says what else in the injected pod it changes ("" when only Env).
	Spec string
	// With holds other annotations the effect needs (a classic sidecar, a debug container).
	With map[string]string
}

var (
	classic = map[string]string{proxyconf.AnnNativeSidecar: "false"}
	debug   = map[string]string{proxyconf.AnnEnableDebugSidecar: "true"}
)

// ConfigAnnotations lists every config.linkerd.io/* (and alpha/beta) annotation the injector
// honours, in the order of Linkerd's proxy-configuration reference, with the injected parts
// each one reaches. A test keeps it, pkg/proxyconf and the proxy's environment in step.
var ConfigAnnotations = []ConfigAnnotation{
	{Key: proxyconf.AnnNativeSidecarAlpha, Example: "false", Spec: "proxy as a restartable init container or a classic sidecar"},
	{Key: proxyconf.AnnWaitBeforeExitSeconds, Example: "10", Spec: "proxy preStop sleep", With: classic},
	{Key: proxyconf.AnnNativeSidecarBeta, Example: "false", Spec: "proxy as a restartable init container or a classic sidecar"},
	{Key: proxyconf.AnnAccessLog, Example: "json", Env: []string{proxyconf.EnvAccessLog}},
	{Key: proxyconf.AnnAdminPort, Example: "4192", Env: []string{proxyconf.EnvAdminListenAddr}, Spec: "admin container port, probes, linkerd-init --inbound-ports-to-ignore"},
	{Key: proxyconf.AnnCloseWaitTimeout, Example: "1m", Spec: "linkerd-init --timeout-close-wait-secs, privileged"},
	{Key: proxyconf.AnnControlPort, Example: "4189", Env: []string{proxyconf.EnvControlListenAddr}, Spec: "linkerd-init --inbound-ports-to-ignore"},
	{Key: proxyconf.AnnDebugImage, Example: "example.com/debug", Spec: "linkerd-debug image", With: debug},
	{Key: proxyconf.AnnDebugImagePullPolicy, Example: "Always", Spec: "linkerd-debug imagePullPolicy", With: debug},
	{Key: proxyconf.AnnDebugImageVersion, Example: "v9", Spec: "linkerd-debug image tag", With: debug},
	{Key: proxyconf.AnnDefaultInboundPolicy, Example: "deny", Env: []string{proxyconf.EnvInboundDefaultPolicy}},
	{Key: proxyconf.AnnEnableDebugSidecar, Example: "true", Spec: "linkerd-debug container"},
	{Key: proxyconf.AnnEnableExternalProfiles, Example: "true", Env: []string{proxyconf.EnvDestinationProfileSuffixes}},
	{Key: proxyconf.AnnImagePullPolicy, Example: "Always", Spec: "proxy and linkerd-init imagePullPolicy"},
	{Key: proxyconf.AnnInboundPort, Example: "4144", Env: []string{proxyconf.EnvInboundListenAddr}, Spec: "proxy container port, linkerd-init --incoming-proxy-port"},
	{Key: proxyconf.AnnInitImage, Example: "example.com/init", Spec: "linkerd-init image"},
	{Key: proxyconf.AnnInitImageVersion, Example: "v9", Spec: "linkerd-init image tag"},
	{Key: proxyconf.AnnOpaquePorts, Example: "8080", Env: []string{proxyconf.EnvInboundDisableDetection}},
	{Key: proxyconf.AnnOutboundPort, Example: "4141", Env: []string{proxyconf.EnvOutboundListenAddr}, Spec: "linkerd-init --outgoing-proxy-port"},
	{Key: proxyconf.AnnPodInboundPorts, Example: "8080,9090", Env: []string{proxyconf.EnvInboundPorts}},
	{Key: proxyconf.AnnProxyAwait, Example: "disabled", Spec: "proxy postStart linkerd-await hook", With: classic},
	{Key: proxyconf.AnnProxyCPULimit, Example: "2", Env: []string{proxyconf.EnvCores}, Spec: "proxy CPU limit"},
	{Key: proxyconf.AnnProxyCPURatioLimit, Example: "0.3", Env: []string{proxyconf.EnvCoresMaxRatio}},
	{Key: proxyconf.AnnProxyCPURequest, Example: "300m", Spec: "proxy CPU request"},
	{Key: proxyconf.AnnDisableInboundDetectTimeout, Example: "true", Env: []string{proxyconf.EnvInboundDetectTimeout}},
	{Key: proxyconf.AnnDisableOutboundDetectTimeout, Example: "true", Env: []string{proxyconf.EnvOutboundDetectTimeout}},
	{Key: proxyconf.AnnProxyEphemeralLimit, Example: "1Gi", Spec: "proxy ephemeral-storage limit"},
	{Key: proxyconf.AnnProxyEphemeralRequest, Example: "10Mi", Spec: "proxy ephemeral-storage request"},
	{Key: proxyconf.AnnProxyGID, Example: "2102", Spec: "proxy runAsGroup, linkerd-init --proxy-gid"},
	{Key: proxyconf.AnnProxyImage, Example: "example.com/proxy", Spec: "proxy image"},
	{Key: proxyconf.AnnInboundConnectTimeout, Example: "250ms", Env: []string{proxyconf.EnvInboundConnectTimeout}},
	{Key: proxyconf.AnnInboundDiscoveryCacheTimeout, Example: "120s", Env: []string{proxyconf.EnvInboundDiscoveryIdle}},
	{Key: proxyconf.AnnProxyLogFormat, Example: "json", Env: []string{proxyconf.EnvLogFormat}},
	{Key: proxyconf.AnnProxyLogLevel, Example: "debug", Env: []string{proxyconf.EnvLog}},
	{Key: proxyconf.AnnProxyMemoryLimit, Example: "1Gi", Spec: "proxy memory limit"},
	{Key: proxyconf.AnnProxyMemoryRequest, Example: "32Mi", Spec: "proxy memory request"},
	{Key: proxyconf.AnnOutboundConnectTimeout, Example: "2s", Env: []string{proxyconf.EnvOutboundConnectTimeout}},
	{Key: proxyconf.AnnOutboundDiscoveryCacheTimeout, Example: "60s", Env: []string{proxyconf.EnvOutboundDiscoveryIdle}},
	{Key: proxyconf.AnnProxyUID, Example: "2103", Spec: "proxy runAsUser, linkerd-init --proxy-uid"},
	{Key: proxyconf.AnnProxyVersion, Example: "v9", Spec: "proxy image tag, linkerd.io/proxy-version"},
	{Key: proxyconf.AnnShutdownGracePeriod, Example: "30s", Env: []string{proxyconf.EnvShutdownGracePeriod}},
	{Key: proxyconf.AnnSkipInboundPorts, Example: "3306", Spec: "linkerd-init --inbound-ports-to-ignore"},
	{Key: proxyconf.AnnSkipOutboundPorts, Example: "443", Spec: "linkerd-init --outbound-ports-to-ignore"},
	{Key: proxyconf.AnnSkipSubnets, Example: "10.9.0.0/16", Spec: "linkerd-init --subnets-to-ignore"},
	// Not in the reference table, honoured by current Linkerd's injector.
	{Key: proxyconf.AnnNativeSidecar, Example: "false", Spec: "proxy as a restartable init container or a classic sidecar"},
	{Key: proxyconf.AnnProxyAdminShutdown, Example: "enabled", Env: []string{proxyconf.EnvShutdownEndpointEnabled}},
	{Key: proxyconf.AnnProxyLogHTTPHeaders, Example: "insecure", Spec: "none: l5d's proxy never logs header values, so off and insecure are both accepted"},
	{Key: proxyconf.AnnProxyAdditionalEnv, Example: `[{"name":"LINKERD2_PROXY_OUTBOUND_HTTP_QUEUE_CAPACITY","value":"1000"}]`, Spec: "the listed proxy env vars, after (and replacing) the injector's"},
	{Key: proxyconf.AnnProxyMetricsHostnameLabels, Example: "true", Env: []string{proxyconf.EnvMetricsHostnameLabels}},
	{Key: proxyconf.AnnEnableGateway, Example: "true", Env: []string{proxyconf.EnvInboundGatewaySuffixes}},
	{Key: proxyconf.AnnRequireIdentityInboundPorts, Example: "8080,9000-9100", Env: []string{proxyconf.EnvInboundPortsRequireID}},
}
