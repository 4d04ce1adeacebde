package server

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestOwnerLabels: the endpoint metric labels name the pod's workload as Linkerd's
// destination does, a job as k8s_job (the viz queries read dst_k8s_job).
func TestOwnerLabels(t *testing.T) {
	yes := true
	owned := func(kind, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}}}
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{
		{"job by owner", owned("Job", "report", nil), map[string]string{"k8s_job": "report"}},
		{"job by injector label", owned("Job", "x", map[string]string{"linkerd.io/proxy-job": "report"}), map[string]string{"k8s_job": "report"}},
		{"deployment through its replicaset", owned("ReplicaSet", "web-5d8f", map[string]string{"pod-template-hash": "5d8f"}), map[string]string{"deployment": "web"}},
		{"statefulset", owned("StatefulSet", "db", nil), map[string]string{"statefulset": "db"}},
	} {
		if got := ownerLabels(tc.pod); !maps.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
