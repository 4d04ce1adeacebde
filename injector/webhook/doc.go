// Package webhook is the proxy injector's mutating admission webhook, served by
// pkg/webhook: for AdmissionReviews of Pods it looks up the pod's namespace and owner, runs
// the inject library and answers with a JSON patch, a refusal naming the bad
// annotation, or an unchanged admission. Every answer is counted in metrics and, for pods
// with an owner, recorded as a Kubernetes Event on it.
//
// Anyone who reaches the webhook port can POST an AdmissionReview, and the API server
// presents no client certificate to webhooks (unless the cluster is configured with an
// admission kubeconfig, which Linkerd installs do not require), so the TLS peer proves
// nothing. Events are therefore written only for what the API server would ask about: not
// for dry runs, not when the namespace does not exist (the review is refused), and only on
// an owner read back from the API server with the UID the pod's controller reference
// names. A caller can still get an Event written on a real owner whose UID it knows; the
// recorder's per-object spam filter bounds those.
package webhook
