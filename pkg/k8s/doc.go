// Package k8s sets up Kubernetes access for the control-plane components: clients built
// from the -kubeconfig flag or the in-cluster service account, shared informer factories
// that are started and waited on with a bounded, explained timeout, and an RBAC self-check
// that reports every permission a component lacks at start.
//
// Only this package of the pkg module imports client-go; the proxy must never import it.
package k8s
