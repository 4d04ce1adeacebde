// Package cpucost measures the CPU time a benchmark spends in its own process and in the
// test API server, so that it can report CPU per operation beside its latencies: a figure
// that a machine loaded by other work changes far less than latency or throughput.
package cpucost

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// Self returns the CPU time (user and system) this process has used so far.
func Self() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// APIServer returns the CPU time the API server behind client (a REST client of its root,
// such as Discovery().RESTClient()) has used so far: its process_cpu_seconds_total.
func APIServer(ctx context.Context, client rest.Interface) (time.Duration, error) {
	body, err := client.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("API server /metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("API server /metrics: %w", err)
	}
	f := families["process_cpu_seconds_total"]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, fmt.Errorf("API server /metrics has no process_cpu_seconds_total")
	}
	return time.Duration(f.GetMetric()[0].GetCounter().GetValue() * float64(time.Second)), nil
}

// Meter is the CPU time of this process and of the API server since Start.
type Meter struct {
	api             rest.Interface
	self, apiserver time.Duration
	// scrape is what one read of the API server's metrics costs it (its /metrics is
	// large): the two reads, at Start and at Report, each count about half of one.
	scrape time.Duration
}

// Start begins measuring; api is as for APIServer, nil to measure this process only.
func Start(ctx context.Context, api rest.Interface) (*Meter, error) {
	m := &Meter{api: api}
	if api != nil {
		first, err := APIServer(ctx, api)
		if err != nil {
			return nil, err
		}
		if m.apiserver, err = APIServer(ctx, api); err != nil {
			return nil, err
		}
		m.scrape = m.apiserver - first
	}
	var err error
	if m.self, err = Self(); err != nil {
		return nil, err
	}
	return m, nil
}

// Report reports the CPU time since Start per operation, ops operations in all, in
// microseconds: cpu-µs/op for this process (the benchmark's clients included) and
// apiserver-cpu-µs/op for the API server, less what reading its metrics cost it. The API
// server's figure has the resolution of its metric (10 ms) and includes its background
// work (watches, the controllers' requests), so ops should be many.
func (m *Meter) Report(b *testing.B, ops int) {
	b.Helper()
	if ops <= 0 {
		return
	}
	self, err := Self()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((self-m.self).Microseconds())/float64(ops), "cpu-µs/op")
	if m.api == nil {
		return
	}
	api, err := APIServer(b.Context(), m.api)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(max(0, api-m.apiserver-m.scrape).Microseconds())/float64(ops), "apiserver-cpu-µs/op")
}
