module github.com/l5d-go/l5d/conformance

go 1.26.0

require (
	k8s.io/apiextensions-apiserver v0.36.1
	k8s.io/client-go v0.36.1
	sigs.k8s.io/controller-runtime v0.24.1
	sigs.k8s.io/gateway-api v1.6.3
	sigs.k8s.io/gateway-api/conformance v1.6.3
)
