module github.com/l5d-go/l5d/proxy-init

go 1.26.0

require (
	github.com/containernetworking/cni v1.3.0
	golang.org/x/sys v0.48.0
	k8s.io/api v0.36.1
	k8s.io/apimachinery v0.36.1
	k8s.io/client-go v0.36.1
)
