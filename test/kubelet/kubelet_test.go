package kubelet

import (
	"context"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podTimeout bounds a pod's start on a loaded machine: image pull, sandbox, container.
const podTimeout = 2 * time.Minute

// TestPodFromLocalImageGetsReady: a pod whose image was built in the test with
// go-containerregistry and pushed to the cluster's registry is pulled through containerd's
// ghcr.io mirror, runs as a container under the real kubelet and gets Ready; its Node is
// a real kubelet's.
func TestPodFromLocalImageGetsReady(t *testing.T) {
	c := cluster(t)
	t.Logf("cluster with two real nodes up in %v", shared.startup)
	ns := c.Kube().Namespace(t)
	ctx := context.Background()
	began := time.Now()
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, appPod(ns, "web", true, "serve"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, c, ns, "web", podTimeout, "Ready", kube.PodReady)
	t.Logf("pod Ready %v after creation", time.Since(began))
	if p.Status.PodIP == "" || p.Status.ContainerStatuses[0].ContainerID == "" {
		t.Fatalf("pod has no IP or container ID: %+v", p.Status)
	}
	node, err := c.Client().CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := node.Status.NodeInfo.KubeletVersion; v != "v1.34.4" {
		t.Errorf("node %s's kubelet version is %q, want v1.34.4", node.Name, v)
	}
	if rt := node.Status.NodeInfo.ContainerRuntimeVersion; len(rt) < len("containerd://") || rt[:len("containerd://")] != "containerd://" {
		t.Errorf("node %s's container runtime is %q, want containerd://...", node.Name, rt)
	}
}
