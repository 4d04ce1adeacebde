package status

import (
	"context"
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/network"
)

// egressAccepted is the Accepted condition of an EgressNetwork: True (reason Accepted)
// unless a network does not parse or overlaps the cluster networks, which traffic
// policy never governs (False, reason Invalid, naming the network).
func egressAccepted(en *api.EgressNetwork, cluster []netip.Prefix) metav1.Condition {
	for i, nw := range en.Spec.Networks {
		n, err := network.Parse(nw.CIDR, nw.Except)
		if err != nil {
			return condition("Accepted", false, "Invalid", fmt.Sprintf("spec.networks[%d]: %v", i, err), en.Generation)
		}
		for _, c := range cluster {
			if n.Net.Overlaps(c) {
				return condition("Accepted", false, "Invalid", fmt.Sprintf("spec.networks[%d]: %s overlaps the cluster network %s", i, n.Net, c), en.Generation)
			}
		}
	}
	return condition("Accepted", true, "Accepted", "", en.Generation)
}

// reconcileEgress writes an EgressNetwork's Accepted condition when it changed; other
// condition types are kept.
func (w *Writer) reconcileEgress(ctx context.Context, u *unstructured.Unstructured) error {
	en := new(api.EgressNetwork)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, en); err != nil {
		return fmt.Errorf("reading EgressNetwork: %w", err)
	}
	want := egressAccepted(en, w.cfg.ClusterNetworks)
	conds := en.Status.Conditions
	i := 0
	for i < len(conds) && conds[i].Type != want.Type {
		i++
	}
	if i < len(conds) {
		old := conds[i]
		if sameConditions([]metav1.Condition{old}, []metav1.Condition{want}) {
			return nil
		}
		want.LastTransitionTime = metav1.Now()
		if old.Status == want.Status {
			want.LastTransitionTime = old.LastTransitionTime
		}
		conds = append(append(conds[:i:i], want), conds[i+1:]...)
	} else {
		want.LastTransitionTime = metav1.Now()
		conds = append(conds, want)
	}
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&api.EgressNetworkStatus{Conditions: conds})
	if err != nil {
		return err
	}
	obj := u.DeepCopy()
	if err := unstructured.SetNestedField(obj.Object, st["conditions"], "status", "conditions"); err != nil {
		return err
	}
	if _, err := w.dyn.Resource(api.EgressNetworks).Namespace(u.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating status: %w", err)
	}
	w.writes.Add(1)
	return nil
}
