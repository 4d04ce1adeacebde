package check

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CNINamespace is where linkerd install-cni puts the linkerd-cni DaemonSet.
const CNINamespace = "linkerd-cni"

// Names of the linkerd2-cni chart's objects.
const (
	cniName      = "linkerd-cni"
	cniConfigMap = "linkerd-cni-config"
)

// cniPlugin is Linkerd's linkerd-cni-plugin category: the linkerd2-cni chart's objects
// exist in CNINamespace and the DaemonSet's pods are ready on every node it runs on.
func (r *runner) cniPlugin() group {
	ns := CNINamespace
	exists := func(what string, get func(ctx context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			err := get(ctx)
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%s does not exist: install the CNI plugin with `linkerd install-cni | kubectl apply -f -`", what)
			}
			return err
		}
	}
	get := metav1.GetOptions{}
	return group{"linkerd-cni-plugin", []check{
		{name: "cni plugin ConfigMap exists", hint: "cni-plugin-cm-exists", fatal: true, run: exists("ConfigMap "+ns+"/"+cniConfigMap, func(ctx context.Context) error {
			_, err := r.kube.CoreV1().ConfigMaps(ns).Get(ctx, cniConfigMap, get)
			return err
		})},
		{name: "cni plugin ClusterRole exists", hint: "cni-plugin-cr-exists", fatal: true, run: exists("ClusterRole "+cniName, func(ctx context.Context) error {
			_, err := r.kube.RbacV1().ClusterRoles().Get(ctx, cniName, get)
			return err
		})},
		{name: "cni plugin ClusterRoleBinding exists", hint: "cni-plugin-crb-exists", fatal: true, run: exists("ClusterRoleBinding "+cniName, func(ctx context.Context) error {
			_, err := r.kube.RbacV1().ClusterRoleBindings().Get(ctx, cniName, get)
			return err
		})},
		{name: "cni plugin ServiceAccount exists", hint: "cni-plugin-sa-exists", fatal: true, run: exists("ServiceAccount "+ns+"/"+cniName, func(ctx context.Context) error {
			_, err := r.kube.CoreV1().ServiceAccounts(ns).Get(ctx, cniName, get)
			return err
		})},
		{name: "cni plugin DaemonSet exists", hint: "cni-plugin-ds-exists", fatal: true, run: exists("DaemonSet "+ns+"/"+cniName, func(ctx context.Context) error {
			_, err := r.kube.AppsV1().DaemonSets(ns).Get(ctx, cniName, get)
			return err
		})},
		{name: "cni plugin pod is running on all nodes", hint: "cni-plugin-ready", fatal: true, run: func(ctx context.Context) error {
			ds, err := r.kube.AppsV1().DaemonSets(ns).Get(ctx, cniName, get)
			if err != nil {
				return err
			}
			st := ds.Status
			if st.DesiredNumberScheduled == 0 {
				return errors.New("the linkerd-cni DaemonSet is scheduled on no node")
			}
			if st.NumberReady != st.DesiredNumberScheduled {
				return fmt.Errorf("number ready: %d, number scheduled: %d", st.NumberReady, st.DesiredNumberScheduled)
			}
			return nil
		}},
	}}
}
