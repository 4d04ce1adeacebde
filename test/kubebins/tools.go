//go:build tools

// Package kubebins pins the Kubernetes and etcd programs the test substrate runs. It is a
// module of its own, outside go.work, because its replace lines would otherwise pin
// client-go for the whole workspace.
package kubebins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
