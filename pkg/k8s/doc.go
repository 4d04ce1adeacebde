// Package k8s sets up Kubernetes access for the control-plane components: clients built
// from the -kubeconfig flag or the in-cluster service account; shared informers (one
// Informers set a component, with optional kinds picked by what the API server serves)
// that are started and waited on with a bounded, explained timeout; Changes, the change
// signal that wakes only the watchers an informer event may concern; and an RBAC
// self-check that reports every permission a component lacks at start.
//
// Only this package of the pkg module imports client-go; the proxy must never import it.
package k8s
