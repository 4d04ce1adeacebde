package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// nodeModes are the two kinds of node the benchmarks compare: the real kubelet with
// containerd, and the node agent (test/node) as the baseline.
var nodeModes = []struct {
	name    string
	kubelet bool
}{{"kubelet", true}, {"agent", false}}

// skipUnlessRoot skips b without root or with L5D_SKIP_KUBE=1.
func skipUnlessRoot(b *testing.B) {
	if os.Getenv("L5D_SKIP_KUBE") == "1" {
		b.Skip("L5D_SKIP_KUBE=1")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
}

// BenchmarkClusterUp times localcluster.Up until its one node is Ready (and, with real
// nodes, the pause image is pushed): the control plane is the same in both modes, so the
// difference is the node's start. Close is not timed.
func BenchmarkClusterUp(b *testing.B) {
	skipUnlessRoot(b)
	for _, mode := range nodeModes {
		b.Run(mode.name, func(b *testing.B) {
			dir := b.TempDir()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run := filepath.Join(dir, fmt.Sprint(i))
				c, err := upCluster(run, mode.kubelet, 1)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(filepath.Join(run, "run"))
				b.StartTimer()
			}
		})
	}
}

// BenchmarkPodReady times a pod from creation to Ready (scheduling, image pull the first
// time, sandbox and network, the container, a TCP readiness probe every second) on a real
// node and on the node agent; deleting it is not timed.
func BenchmarkPodReady(b *testing.B) {
	skipUnlessRoot(b)
	for _, mode := range nodeModes {
		b.Run(mode.name, func(b *testing.B) {
			var c *localcluster.Cluster
			if mode.kubelet {
				c = cluster(b)
			} else {
				var err error
				if c, err = upCluster(b.TempDir(), false, 1); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() {
					if err := c.Close(); err != nil {
						b.Error(err)
					}
				})
			}
			ns := c.Kube().Namespace(b)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("web-%d", i)
				if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, appPod(ns, name, true, "serve"), metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				waitPod(b, c, ns, name, podTimeout, "Ready", kube.PodReady)
				b.StopTimer()
				if err := c.Client().CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					b.Fatal(err)
				}
				if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
					_, err := c.Client().CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
					return err != nil, nil
				}); err != nil {
					b.Fatalf("pod %s was not deleted: %v", name, err)
				}
				b.StartTimer()
			}
		})
	}
}
