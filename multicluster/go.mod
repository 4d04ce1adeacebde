module github.com/l5d-go/l5d/multicluster

go 1.26.0

require (
	github.com/prometheus/client_golang v1.25.0
	golang.org/x/sync v0.24.0
	k8s.io/api v0.36.1
	k8s.io/apimachinery v0.36.1
	k8s.io/client-go v0.36.1
)
