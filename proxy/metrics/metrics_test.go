package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// The output must parse as Prometheus text.
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, buf.String())
	}
	return buf.String()
}

func TestHTTPMetricsLabelsAndBuckets(t *testing.T) {
	r := New()
	base := Join(Labels("direction", "outbound", "authority", `web.ns.svc.cluster.local:80`,
		"target_addr", "10.0.0.1:80", "tls", "no_identity"), DstLabels(map[string]string{"pod": "web-0", "namespace": "ns", "bad-label": "x"}))
	h := r.HTTP(base)
	if r.HTTP(base) != h {
		t.Fatal("same labels gave a different handle")
	}
	h.Request()
	h.Request()
	h.Request()
	h.Response(200, false, 1500*time.Microsecond)
	h.Response(200, false, 40*time.Millisecond)
	h.Response(503, true, 3*time.Second)
	out := scrape(t, r)
	want := []string{
		`request_total{direction="outbound",authority="web.ns.svc.cluster.local:80",target_addr="10.0.0.1:80",tls="no_identity",dst_namespace="ns",dst_pod="web-0"} 3`,
		`response_total{direction="outbound",authority="web.ns.svc.cluster.local:80",target_addr="10.0.0.1:80",tls="no_identity",dst_namespace="ns",dst_pod="web-0",status_code="200",classification="success"} 2`,
		`response_total{direction="outbound",authority="web.ns.svc.cluster.local:80",target_addr="10.0.0.1:80",tls="no_identity",dst_namespace="ns",dst_pod="web-0",status_code="503",classification="failure"} 1`,
		`status_code="200",le="1"} 0`,
		`status_code="200",le="2"} 1`,
		`status_code="200",le="30"} 1`,
		`status_code="200",le="40"} 2`,
		`status_code="200",le="+Inf"} 2`,
		`status_code="503",le="2000"} 0`,
		`status_code="503",le="3000"} 1`,
		`response_latency_ms_sum{direction="outbound",authority="web.ns.svc.cluster.local:80",target_addr="10.0.0.1:80",tls="no_identity",dst_namespace="ns",dst_pod="web-0",status_code="200"} 41.5`,
		`response_latency_ms_count{direction="outbound",authority="web.ns.svc.cluster.local:80",target_addr="10.0.0.1:80",tls="no_identity",dst_namespace="ns",dst_pod="web-0",status_code="200"} 2`,
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("missing %s\nin:\n%s", w, out)
		}
	}
	if strings.Contains(out, "bad-label") {
		t.Error("invalid label name exported")
	}
}

func TestTCPMetrics(t *testing.T) {
	r := New()
	c := r.TCP(Labels("direction", "inbound", "peer", "src", "target_addr", "127.0.0.1:80", "tls", "no_identity"))
	c.Open()
	c.Open()
	c.Read(100)
	c.Wrote(7)
	c.Close()
	out := scrape(t, r)
	for _, w := range []string{
		`tcp_open_total{direction="inbound",peer="src",target_addr="127.0.0.1:80",tls="no_identity"} 2`,
		`tcp_close_total{direction="inbound",peer="src",target_addr="127.0.0.1:80",tls="no_identity",errno=""} 1`,
		`tcp_open_connections{direction="inbound",peer="src",target_addr="127.0.0.1:80",tls="no_identity"} 1`,
		`tcp_read_bytes_total{direction="inbound",peer="src",target_addr="127.0.0.1:80",tls="no_identity"} 100`,
		`tcp_write_bytes_total{direction="inbound",peer="src",target_addr="127.0.0.1:80",tls="no_identity"} 7`,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %s\nin:\n%s", w, out)
		}
	}
}

func TestLabelsEscapeValues(t *testing.T) {
	got := Labels("authority", "a\"b\\c\nd")
	if want := `authority="a\"b\\c\nd"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	r := New()
	r.HTTP(got).Request()
	scrape(t, r)
}

func TestRecordingDoesNotAllocate(t *testing.T) {
	h := New().HTTP(Labels("direction", "outbound"))
	h.Response(200, false, time.Millisecond) // first response of a status allocates once
	n := testing.AllocsPerRun(1000, func() {
		h.Request()
		h.Response(200, false, 3*time.Millisecond)
	})
	if n != 0 {
		t.Errorf("recording allocates %v times per request", n)
	}
}

func BenchmarkRecordResponse(b *testing.B) {
	h := New().HTTP(Labels("direction", "outbound"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Request()
			h.Response(200, false, 3*time.Millisecond)
		}
	})
}
