package servicemirror

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
)

// BenchmarkMirrorPropagation measures, per exported Service, the time from its creation
// in the remote API server to the mirror's creation event in the local one (two real API
// servers on one machine; the remote one through the test relay).
func BenchmarkMirrorPropagation(b *testing.B) {
	lc := linkB(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Controller{Link: testLinkB(b, "192.0.2.10"), Local: lc.local, Remote: lc.viaRelay,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	w, err := lc.local.CoreV1().Services(lc.ns).Watch(ctx, metav1.ListOptions{LabelSelector: mc.LabelClusterName + "=east"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("svc-%d", i)
		if _, err := lc.remote.CoreV1().Services(lc.ns).Create(ctx, service(lc.ns, name, "true", 8080), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(time.Minute)
	wait:
		for {
			select {
			case ev := <-w.ResultChan():
				if m, ok := ev.Object.(metav1.Object); ok && ev.Type == watch.Added && m.GetName() == name+"-east" {
					break wait
				}
			case <-deadline:
				b.Fatalf("%s-east not mirrored within a minute", name)
			}
		}
	}
}
