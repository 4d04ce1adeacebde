// Package kube runs a private Kubernetes control plane for a test binary: a real etcd and
// kube-apiserver (and optionally kube-controller-manager and kube-scheduler) on loopback
// ports, built by `make kube-bins`, with PKI generated in memory.
//
// A test package starts it from TestMain and each test takes a fresh namespace:
//
//	func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }
//
//	func TestSomething(t *testing.T) {
//		c := kube.Shared(t)     // started on first use, stopped after the last test
//		ns := c.Namespace(t)    // deleted with its contents when the test ends
//		c.Apply(t, ns, yaml)    // server-side apply of any kinds, CRDs included
//		client := c.Client()    // or RESTConfig(), Kubeconfig(), Dynamic(), APIExtensions()
//	}
//
// The API server is set up like a real cluster where it matters to a service mesh:
// service-account issuer and API audience ServiceAccountIssuer, RBAC and Node
// authorization, ServiceAccount admission and admission webhooks, service range
// ServiceCIDR (API-level only: nothing is routed). There are no kubelets: CreateNode makes
// Ready nodes and SetPodStatus plays the kubelet's part for a pod.
//
// Component logs go to files; a failing test prints what each component logged while it
// ran. Components run in their own process groups and die with the test binary
// (Pdeathsig) however it ends; a run killed before cleanup leaves a directory under
// $TMPDIR/l5d-kube that the next run reclaims. L5D_KUBE_KEEP=1 keeps the run directory
// (kubeconfig, PKI, logs) after the tests; L5D_SKIP_KUBE=1 skips the tests that call Shared.
package kube
