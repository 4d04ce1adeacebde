package inject

import "github.com/l5d-go/l5d/pkg/proxyconf"

// Annotation and label keys the injector reads (inputs) and writes (outputs). The names are
// Linkerd's, so manifests written for Linkerd work unchanged.
const (
	// AnnotationInject turns injection on or off for a namespace, workload or pod: enabled,
	// ingress or disabled. The most specific level wins.
	AnnotationInject = proxyconf.AnnInject

	// AnnotationCreatedBy records the injector (or CLI) and version that injected a pod.
	AnnotationCreatedBy = "linkerd.io/created-by"
	// AnnotationProxyVersion records the injected proxy's version.
	AnnotationProxyVersion = "linkerd.io/proxy-version"
	// AnnotationTrustRootSHA256 is the hex SHA-256 of the trust anchors' PEM text.
	AnnotationTrustRootSHA256 = "linkerd.io/trust-root-sha256"
	// AnnotationIdentityMode is "default": the proxy takes its mTLS identity from the
	// control plane (Linkerd wrote "disabled" for proxies without identity, which l5d never
	// injects). Tools written for Linkerd read it to tell meshed pods' identity.
	AnnotationIdentityMode = "linkerd.io/identity-mode"

	// LabelControlPlaneNS names the control plane's namespace on injected pods.
	LabelControlPlaneNS = "linkerd.io/control-plane-ns"
	// LabelWorkloadNS names the pod's own namespace on injected pods.
	LabelWorkloadNS = "linkerd.io/workload-ns"
	// LabelProxyOwnerPrefix is followed by the lower-case owner kind ("deployment", "job", ...)
	// and holds the owner's name.
	LabelProxyOwnerPrefix = "linkerd.io/proxy-"

	// AnnotationDisableTap set to "true" on a pod or namespace keeps viz's tap injector from
	// enabling tap on its proxies.
	AnnotationDisableTap = "config.linkerd.io/disable-tap"
	// AnnotationTapEnabled is "true" on pods whose proxies viz's tap injector configured
	// to serve tap.
	AnnotationTapEnabled = "viz.linkerd.io/tap-enabled"
	// EnvTapSvcName is the proxy's environment variable naming the one identity its tap
	// server (port 4190) serves; without it the proxy serves no tap.
	EnvTapSvcName = "LINKERD2_PROXY_TAP_SVC_NAME"

	// LabelAdmissionWebhooks set to "disabled" on a namespace exempts it from the webhooks.
	LabelAdmissionWebhooks = proxyconf.LabelAdmissionWebhooks

	// Configuration overrides, on a namespace (defaults for its pods) or a pod (template); the
	// names live in pkg/proxyconf, ConfigAnnotations says what each one changes.
	AnnotationProxyImage             = proxyconf.AnnProxyImage
	AnnotationProxyVersionOverride   = proxyconf.AnnProxyVersion
	AnnotationInitImage              = proxyconf.AnnInitImage
	AnnotationInitImageVersion       = proxyconf.AnnInitImageVersion
	AnnotationImagePullPolicy        = proxyconf.AnnImagePullPolicy
	AnnotationProxyLogLevel          = proxyconf.AnnProxyLogLevel
	AnnotationProxyLogFormat         = proxyconf.AnnProxyLogFormat
	AnnotationProxyCPURequest        = proxyconf.AnnProxyCPURequest
	AnnotationProxyCPULimit          = proxyconf.AnnProxyCPULimit
	AnnotationProxyMemoryRequest     = proxyconf.AnnProxyMemoryRequest
	AnnotationProxyMemoryLimit       = proxyconf.AnnProxyMemoryLimit
	AnnotationProxyEphemeralRequest  = proxyconf.AnnProxyEphemeralRequest
	AnnotationProxyEphemeralLimit    = proxyconf.AnnProxyEphemeralLimit
	AnnotationSkipInboundPorts       = proxyconf.AnnSkipInboundPorts
	AnnotationSkipOutboundPorts      = proxyconf.AnnSkipOutboundPorts
	AnnotationSkipSubnets            = proxyconf.AnnSkipSubnets
	AnnotationOpaquePorts            = proxyconf.AnnOpaquePorts
	AnnotationInboundConnectTimeout  = proxyconf.AnnInboundConnectTimeout
	AnnotationOutboundConnectTimeout = proxyconf.AnnOutboundConnectTimeout
	AnnotationDefaultInboundPolicy   = proxyconf.AnnDefaultInboundPolicy
	AnnotationProxyAwait             = proxyconf.AnnProxyAwait
	AnnotationAccessLog              = proxyconf.AnnAccessLog
	AnnotationProxyUID               = proxyconf.AnnProxyUID
	AnnotationEnableDebugSidecar     = proxyconf.AnnEnableDebugSidecar
	AnnotationDebugImage             = proxyconf.AnnDebugImage
	AnnotationDebugImageVersion      = proxyconf.AnnDebugImageVersion
	AnnotationWaitBeforeExitSeconds  = proxyconf.AnnWaitBeforeExitSeconds

	// AnnotationNativeSidecar ("true"/"false") injects the proxy as a native sidecar or
	// not; it wins over the older beta and alpha keys, which are still read (beta over alpha).
	AnnotationNativeSidecar      = proxyconf.AnnNativeSidecar
	AnnotationNativeSidecarBeta  = proxyconf.AnnNativeSidecarBeta
	AnnotationNativeSidecarAlpha = proxyconf.AnnNativeSidecarAlpha
	// AnnotationProxyAdminShutdown ("enabled"/"disabled") serves the proxy's POST /shutdown
	// admin endpoint (LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED), off by default except for
	// classic-sidecar Jobs and CronJobs, whose proxy must be stopped once the job is done.
	AnnotationProxyAdminShutdown = proxyconf.AnnProxyAdminShutdown
)

// Container, volume and port names of the injected parts.
const (
	ProxyContainerName      = proxyconf.ProxyContainer
	InitContainerName       = proxyconf.InitContainer
	ValidatorContainerName  = proxyconf.NetworkValidatorContainer
	DebugContainerName      = "linkerd-debug"
	VolumeXtablesLock       = "linkerd-proxy-init-xtables-lock"
	VolumeIdentityEndEntity = "linkerd-identity-end-entity"
	VolumeIdentityToken     = "linkerd-identity-token"
	PortNameProxy           = "linkerd-proxy"
	PortNameAdmin           = "linkerd-admin"
)

// Mode is the value of linkerd.io/inject.
type Mode string

// Injection modes.
const (
	ModeEnabled  Mode = "enabled"
	ModeIngress  Mode = "ingress"
	ModeDisabled Mode = "disabled"
)
