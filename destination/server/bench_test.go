package server_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
)

// BenchmarkEndpointFanout measures, with 500 Services of 10 endpoints each and streams
// open on them, the time from an EndpointSlice change at the API server to the update
// reaching every stream subscribed to that Service (p50/p99 over all of them), and the
// process's heap. Sub-benchmark streams=500 (one per Service) is the baseline for
// streams=2000.
func BenchmarkEndpointFanout(b *testing.B) {
	for _, streams := range []int{500, 2000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) { benchFanout(b, streams) })
	}
}

func benchFanout(b *testing.B, streams int) {
	e := startB(b)
	ns := e.c.Namespace(b)
	const services = 500
	ready := true
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		if _, err := e.c.Client().CoreV1().Services(ns).Create(b.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.c.Client().DiscoveryV1().EndpointSlices(ns).Create(b.Context(), slice(name, i, 10, ready), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	// Get answers NotFound for a Service the server's caches do not hold yet: wait until
	// they hold the last one created (the informer applies events in order).
	for deadline := time.Now().Add(time.Minute); ; {
		s, err := e.pb.Get(b.Context(), &pb.GetDestination{Path: fmt.Sprintf("svc-%d.%s.svc.cluster.local:80", services-1, ns)})
		if err != nil {
			b.Fatal(err)
		}
		_, err = s.Recv()
		if err == nil {
			break
		}
		if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
			b.Fatalf("Get of the last Service: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for the informer to see the Services
	}
	// Open the streams and wait for each to see its 10 endpoints.
	var wg sync.WaitGroup
	subs := make([]fanoutSub, streams)
	for s := range streams {
		svc := s % services
		subs[s] = fanoutSub{svc: svc, got: make(chan time.Time, 64)}
		stream, err := e.pb.Get(b.Context(), &pb.GetDestination{Path: fmt.Sprintf("svc-%d.%s.svc.cluster.local:80", svc, ns)})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func(got chan time.Time) {
			n := 0
			for {
				u, err := stream.Recv()
				if err != nil {
					return
				}
				if a := u.GetAdd(); a != nil {
					n += len(a.Addrs)
					if n == 10 {
						wg.Done()
					} else if n > 10 {
						got <- time.Now()
					}
				}
			}
		}(subs[s].got)
	}
	wg.Wait()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		svc := i % services
		name := fmt.Sprintf("svc-%d", svc)
		start := time.Now()
		// One more endpoint on the Service's slice.
		if _, err := e.c.Client().DiscoveryV1().EndpointSlices(ns).Update(b.Context(), slice(name, svc, 11+i/services, ready), metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		lat = awaitFanout(b, subs, svc, name, start, lat)
	}
	b.StopTimer()
	reportLatencies(b, lat)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
	b.ReportMetric(rssMB(), "rss-MB")
}

func slice(svc string, i, n int, ready bool) *discoveryv1.EndpointSlice {
	port, name := int32(8080), "http"
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}}
	for j := range n {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 100+i/250, i%250, j+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkProfileFanout measures, with 500 Services and GetProfile streams open on them,
// the time from a Service change at the API server (its opaque-ports annotation) to the new
// profile reaching every stream of that Service (p50/p99), and how many stream answers
// were recomputed per change (recomputes/op: the streams woken; only the changed
// Service's should be). Sub-benchmark streams=500 (one per Service) is the baseline for
// streams=2000.
func BenchmarkProfileFanout(b *testing.B) {
	for _, streams := range []int{500, 2000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) { benchProfileFanout(b, streams) })
	}
}

func benchProfileFanout(b *testing.B, streams int) {
	e := startB(b)
	ns := e.c.Namespace(b)
	const services = 500
	svcs := e.c.Client().CoreV1().Services(ns)
	for i := range services {
		if _, err := svcs.Create(b.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	subs := make([]fanoutSub, streams)
	for s := range streams {
		svc := s % services
		subs[s] = fanoutSub{svc: svc, got: make(chan time.Time, 64)}
		stream, err := e.pb.GetProfile(b.Context(), &pb.GetDestination{Path: fmt.Sprintf("svc-%d.%s.svc.cluster.local:80", svc, ns)})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func(got chan time.Time) {
			first := true
			for {
				if _, err := stream.Recv(); err != nil {
					return
				}
				if first {
					first = false
					wg.Done()
				} else {
					got <- time.Now()
				}
			}
		}(subs[s].got)
	}
	wg.Wait()
	recomputes := func() float64 {
		mfs, err := e.reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "destination_stream_recomputes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "method" && lp.GetValue() == "GetProfile" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	b.ResetTimer()
	before := recomputes()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		svc := i % services
		name := fmt.Sprintf("svc-%d", svc)
		s, err := svcs.Get(b.Context(), name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		// Toggle the Service between opaque and not on its port: its profile changes.
		if _, ok := s.Annotations["config.linkerd.io/opaque-ports"]; ok {
			s.Annotations = nil
		} else {
			s.Annotations = map[string]string{"config.linkerd.io/opaque-ports": "80"}
		}
		start := time.Now()
		if _, err := svcs.Update(b.Context(), s, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		lat = awaitFanout(b, subs, svc, name, start, lat)
	}
	b.StopTimer()
	reportLatencies(b, lat)
	b.ReportMetric((recomputes()-before)/float64(b.N), "recomputes/op")
}

// fanoutSub is one stream of a fan-out benchmark: the Service it watches and when it saw
// each change.
type fanoutSub struct {
	svc int
	got chan time.Time
}

// awaitFanout waits until every stream of Service svc (named name) saw the change made at
// start, and returns lat with their latencies added.
func awaitFanout(b *testing.B, subs []fanoutSub, svc int, name string, start time.Time, lat []time.Duration) []time.Duration {
	b.Helper()
	for _, s := range subs {
		if s.svc != svc {
			continue
		}
		select {
		case at := <-s.got:
			lat = append(lat, at.Sub(start))
		case <-time.After(30 * time.Second):
			b.Fatalf("a stream of %s never saw the change", name)
		}
	}
	return lat
}

// reportLatencies reports the median and 99th percentile of lat in milliseconds.
func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
