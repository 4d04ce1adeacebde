package viztable

import (
	"fmt"
	"io"
	"time"

	"github.com/l5d-go/l5d/pkg/vizapi"
)

func latency(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.0fms", *p)
}

func share(n, total uint64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(total))
}

func rate(n uint64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(n)/d.Seconds())
}

type jsonInbound struct {
	Name        string   `json:"name"`
	Server      string   `json:"server"`
	Port        string   `json:"port"`
	Route       string   `json:"route"`
	RouteType   string   `json:"routeType"`
	SuccessRate float64  `json:"successRate"`
	RPS         float64  `json:"rps"`
	LatencyP50  *float64 `json:"latencyMsP50"`
	LatencyP95  *float64 `json:"latencyMsP95"`
	LatencyP99  *float64 `json:"latencyMsP99"`
}

// WriteStatInbound prints a StatInbound answer: NAME SERVER ROUTE TYPE SUCCESS RPS
// LATENCY_P50 LATENCY_P95 LATENCY_P99, or JSON.
func WriteStatInbound(w io.Writer, rsp *vizapi.StatInboundResponse, format string) error {
	d := window(rsp.TimeWindow)
	if format == JSON {
		out := make([]jsonInbound, 0, len(rsp.Rows))
		for _, r := range rsp.Rows {
			total := r.SuccessCount + r.FailureCount
			out = append(out, jsonInbound{Name: r.Name, Server: r.Server, Port: r.Port, Route: r.Route, RouteType: r.RouteType,
				SuccessRate: float64(r.SuccessCount) / float64(max(total, 1)), RPS: perSec(total, d),
				LatencyP50: r.P50, LatencyP95: r.P95, LatencyP99: r.P99})
		}
		return writeJSON(w, out)
	}
	rows := make([][]string, 0, len(rsp.Rows))
	for _, r := range rsp.Rows {
		total := r.SuccessCount + r.FailureCount
		rows = append(rows, []string{r.Name, r.Server + ":" + r.Port, r.Route, r.RouteType,
			share(r.SuccessCount, total), rate(total, d), latency(r.P50), latency(r.P95), latency(r.P99)})
	}
	return writeColumns(w, []column{{"NAME", true}, {"SERVER", true}, {"ROUTE", true}, {"TYPE", true},
		{header: "SUCCESS"}, {header: "RPS"}, {header: "LATENCY_P50"}, {header: "LATENCY_P95"}, {header: "LATENCY_P99"}}, rows)
}

func perSec(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

type jsonOutbound struct {
	Name        string   `json:"name"`
	Service     string   `json:"service"`
	Port        string   `json:"port"`
	Route       string   `json:"route"`
	RouteType   string   `json:"routeType"`
	Backend     string   `json:"backend,omitempty"`
	BackendPort string   `json:"backendPort,omitempty"`
	SuccessRate float64  `json:"successRate"`
	RPS         float64  `json:"rps"`
	LatencyP50  *float64 `json:"latencyMsP50"`
	LatencyP95  *float64 `json:"latencyMsP95"`
	LatencyP99  *float64 `json:"latencyMsP99"`
	TimeoutRate float64  `json:"timeoutRate"`
	RetryRate   *float64 `json:"retryRate,omitempty"`
}

// WriteStatOutbound prints a StatOutbound answer: NAME SERVICE ROUTE TYPE BACKEND
// SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TIMEOUTS RETRIES, a route's row
// followed by one row per backend joined to it by an arrow; or JSON (a route's object,
// then one per backend).
func WriteStatOutbound(w io.Writer, rsp *vizapi.StatOutboundResponse, format string) error {
	d := window(rsp.TimeWindow)
	if format == JSON {
		out := []jsonOutbound{}
		for _, r := range rsp.Rows {
			total := r.SuccessCount + r.FailureCount
			retries := float64(r.Retries) / float64(max(total+r.Retries, 1))
			out = append(out, jsonOutbound{Name: r.Name, Service: r.Service, Port: r.Port, Route: r.Route, RouteType: r.RouteType,
				SuccessRate: float64(r.SuccessCount) / float64(max(total, 1)), RPS: perSec(total, d),
				LatencyP50: r.P50, LatencyP95: r.P95, LatencyP99: r.P99,
				TimeoutRate: float64(r.Timeouts) / float64(max(total, 1)), RetryRate: &retries})
			for _, b := range r.Backends {
				bt := b.SuccessCount + b.FailureCount
				out = append(out, jsonOutbound{Name: r.Name, Service: r.Service, Port: r.Port, Route: r.Route, RouteType: r.RouteType,
					Backend: b.Name, BackendPort: b.Port,
					SuccessRate: float64(b.SuccessCount) / float64(max(bt, 1)), RPS: perSec(bt, d),
					LatencyP50: b.P50, LatencyP95: b.P95, LatencyP99: b.P99,
					TimeoutRate: float64(b.Timeouts) / float64(max(bt, 1))})
			}
		}
		return writeJSON(w, out)
	}
	var rows [][]string
	for _, r := range rsp.Rows {
		total := r.SuccessCount + r.FailureCount
		rows = append(rows, []string{r.Name, r.Service + ":" + r.Port, r.Route, r.RouteType, "",
			share(r.SuccessCount, total), rate(total, d), latency(r.P50), latency(r.P95), latency(r.P99),
			share(r.Timeouts, total), share(r.Retries, total+r.Retries)})
		for i, b := range r.Backends {
			bt := b.SuccessCount + b.FailureCount
			branch := "├" + arrow
			if i == len(r.Backends)-1 {
				branch = "└" + arrow
			}
			rows = append(rows, []string{"", "", branch, arrow + "►", b.Name + ":" + b.Port,
				share(b.SuccessCount, bt), rate(bt, d), latency(b.P50), latency(b.P95), latency(b.P99), share(b.Timeouts, bt), ""})
		}
	}
	return writeColumns(w, []column{{"NAME", true}, {"SERVICE", true}, {"ROUTE", true}, {"TYPE", true}, {"BACKEND", true},
		{header: "SUCCESS"}, {header: "RPS"}, {header: "LATENCY_P50"}, {header: "LATENCY_P95"}, {header: "LATENCY_P99"},
		{header: "TIMEOUTS"}, {header: "RETRIES"}}, rows)
}
