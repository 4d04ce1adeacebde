package inject

// Annotation and label keys the injector reads (inputs) and writes (outputs). The names are
// Linkerd's, so manifests written for Linkerd work unchanged.
const (
	// AnnotationInject turns injection on or off for a namespace, workload or pod: enabled,
	// ingress or disabled. The most specific level wins.
	AnnotationInject = "linkerd.io/inject"

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
	LabelAdmissionWebhooks = "config.linkerd.io/admission-webhooks"

	// Configuration overrides, on a namespace (defaults for its pods) or a pod (template).
	AnnotationProxyImage             = "config.linkerd.io/proxy-image"
	AnnotationProxyVersionOverride   = "config.linkerd.io/proxy-version"
	AnnotationInitImage              = "config.linkerd.io/init-image"
	AnnotationInitImageVersion       = "config.linkerd.io/init-image-version"
	AnnotationImagePullPolicy        = "config.linkerd.io/image-pull-policy"
	AnnotationProxyLogLevel          = "config.linkerd.io/proxy-log-level"
	AnnotationProxyLogFormat         = "config.linkerd.io/proxy-log-format"
	AnnotationProxyCPURequest        = "config.linkerd.io/proxy-cpu-request"
	AnnotationProxyCPULimit          = "config.linkerd.io/proxy-cpu-limit"
	AnnotationProxyMemoryRequest     = "config.linkerd.io/proxy-memory-request"
	AnnotationProxyMemoryLimit       = "config.linkerd.io/proxy-memory-limit"
	AnnotationProxyEphemeralRequest  = "config.linkerd.io/proxy-ephemeral-storage-request"
	AnnotationProxyEphemeralLimit    = "config.linkerd.io/proxy-ephemeral-storage-limit"
	AnnotationSkipInboundPorts       = "config.linkerd.io/skip-inbound-ports"
	AnnotationSkipOutboundPorts      = "config.linkerd.io/skip-outbound-ports"
	AnnotationSkipSubnets            = "config.linkerd.io/skip-subnets"
	AnnotationOpaquePorts            = "config.linkerd.io/opaque-ports"
	AnnotationInboundConnectTimeout  = "config.linkerd.io/proxy-inbound-connect-timeout"
	AnnotationOutboundConnectTimeout = "config.linkerd.io/proxy-outbound-connect-timeout"
	AnnotationDefaultInboundPolicy   = "config.linkerd.io/default-inbound-policy"
	AnnotationProxyAwait             = "config.linkerd.io/proxy-await"
	AnnotationAccessLog              = "config.linkerd.io/access-log"
	AnnotationProxyUID               = "config.linkerd.io/proxy-uid"
	AnnotationEnableDebugSidecar     = "config.linkerd.io/enable-debug-sidecar"
	AnnotationDebugImage             = "config.linkerd.io/debug-image"
	AnnotationDebugImageVersion      = "config.linkerd.io/debug-image-version"
	AnnotationWaitBeforeExitSeconds  = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"

	// AnnotationNativeSidecar ("true"/"false") injects the proxy as a native sidecar or
	// not; it wins over the older beta and alpha keys, which are still read (beta over alpha).
	AnnotationNativeSidecar      = "config.linkerd.io/proxy-enable-native-sidecar"
	AnnotationNativeSidecarBeta  = "config.beta.linkerd.io/proxy-enable-native-sidecar"
	AnnotationNativeSidecarAlpha = "config.alpha.linkerd.io/proxy-enable-native-sidecar"
	// AnnotationProxyAdminShutdown ("enabled"/"disabled") serves the proxy's POST /shutdown
	// admin endpoint (LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED), off by default except for
	// classic-sidecar Jobs and CronJobs, whose proxy must be stopped once the job is done.
	AnnotationProxyAdminShutdown = "config.linkerd.io/proxy-admin-shutdown"
)

// Container, volume and port names of the injected parts.
const (
	ProxyContainerName      = "linkerd-proxy"
	InitContainerName       = "linkerd-init"
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
