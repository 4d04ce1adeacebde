// Package inject adds the Linkerd data plane to pods: the linkerd-init container (proxy-init's
// iptables setup) and the linkerd-proxy sidecar, classic or native (a restartable init
// container, the default, so Jobs complete), with the LINKERD2_PROXY_* environment, probes,
// volumes, annotations and labels of a Linkerd-injected pod.
//
// It is pure: no HTTP, no Kubernetes client, and lives in pkg/ because several components
// use it: the injector's admission webhook (injector/webhook) and `linkerd inject --manual`
// both call it, so both produce identical pods, and viz, jaeger and the CLI tell meshed pods
// by it (HasProxy, the container names):
//
//	v := inject.DefaultValues()
//	v.IdentityTrustAnchorsPEM = anchors
//	res, err := v.InjectObject(inject.Namespace{}, deployment, true) // CLI: force = inject unless disabled
//	pod, decision, err := v.InjectPod(ns, owner, pod)                // a pod, on a copy
//	add, err := v.Additions(ns, owner, decision.Mode, &pod.ObjectMeta, &pod.Spec) // webhook: what injection adds, written as the JSON patch
//
// Decide applies the linkerd.io/inject rules; config.linkerd.io/* (and the alpha/beta native
// sidecar) annotations on the namespace are defaults that the pod's own annotations override.
// A value that cannot be used fails the whole injection with an *AnnotationError naming the
// annotation. Native sidecars: config.linkerd.io/proxy-enable-native-sidecar wins over the
// beta key, which wins over the alpha one. config.linkerd.io/proxy-admin-shutdown
// (enabled/disabled) serves the proxy's POST /shutdown.
//
// An injected pod carries what Linkerd's injector writes: the annotations linkerd.io/created-by,
// proxy-version, trust-root-sha256, identity-mode ("default") and inject, plus
// config.linkerd.io/opaque-ports when the pod has none (the namespace's value, or the default
// opaque ports among its container ports), and the labels linkerd.io/control-plane-ns,
// workload-ns and proxy-<owner kind>.
//
// ConfigAnnotations lists every configuration annotation honoured (Linkerd's 49, names in
// pkg/proxyconf) and what each reaches: a LINKERD2_PROXY_* variable as Linkerd's injector
// writes it, or a part of the pod spec. The variables the l5d proxy deliberately ignores
// (metrics hostname labels) are listed with the reason in
// proxy/config.Unsupported, and the proxy warns at start when one is set.
package inject
