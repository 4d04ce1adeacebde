// Package viztable prints the answers of the viz metrics API (package viz/api) as
// Linkerd's viz CLI does: `stat`, `edges` and `routes` tables (right-aligned columns
// three spaces apart, names left-aligned), their `-o wide` variants and `-o json`.
package viztable

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/l5d-go/l5d/pkg/vizapi"
)

// Output formats.
const (
	Table = "table"
	Wide  = "wide"
	JSON  = "json"
)

// CheckFormat returns an error naming the accepted formats unless f is one.
func CheckFormat(f string) error {
	switch f {
	case Table, Wide, JSON:
		return nil
	}
	return fmt.Errorf("--output %q: want table, wide or json", f)
}

const padding = 3

// alignedTable is a table of right-aligned columns whose lines start at the left
// margin: tabwriter pads every right-aligned cell on its left, the first one included,
// and Flush drops that first padding.
type alignedTable struct {
	out io.Writer
	buf bytes.Buffer
	*tabwriter.Writer
}

func newWriter(w io.Writer) *alignedTable {
	t := &alignedTable{out: w}
	t.Writer = tabwriter.NewWriter(&t.buf, 0, 0, padding, ' ', tabwriter.AlignRight)
	return t
}

// Flush writes the table.
func (t *alignedTable) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	margin := strings.Repeat(" ", padding)
	for line := range strings.SplitSeq(strings.TrimSuffix(t.buf.String(), "\n"), "\n") {
		if _, err := fmt.Fprintln(t.out, strings.TrimPrefix(line, margin)); err != nil {
			return err
		}
	}
	return nil
}

// row writes cells right-aligned; the first cells (the names) are left-aligned by
// padding them to widths.
func row(tw io.Writer, widths []int, cells ...string) {
	for i := range widths {
		cells[i] += strings.Repeat(" ", max(widths[i]-len(cells[i]), 0))
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
}

func percent(ok, total uint64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(ok)/float64(total))
}

func rps(n uint64, window time.Duration) string {
	if window <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1frps", float64(n)/window.Seconds())
}

func ms(v uint64) string { return fmt.Sprintf("%dms", v) }

func ptr[T any](v T) *T { return &v }

func window(w string) time.Duration {
	d, err := vizapi.ParseWindow(w)
	if err != nil {
		return 0
	}
	return d
}

// ShortType is how Linkerd's CLI prefixes names of a type ("deploy/web" in `stat all`).
func ShortType(t string) string {
	switch t {
	case vizapi.Deployment:
		return "deploy"
	case vizapi.StatefulSet:
		return "sts"
	case vizapi.DaemonSet:
		return "ds"
	case vizapi.ReplicaSet:
		return "rs"
	case vizapi.ReplicationController:
		return "rc"
	case vizapi.Service:
		return "svc"
	case vizapi.Namespace:
		return "ns"
	case vizapi.CronJob:
		return "cronjob"
	case vizapi.Authority:
		return "au"
	}
	return t
}

// StatOptions say how to print a stat summary.
type StatOptions struct {
	Format        string
	AllNamespaces bool
	// Prefix names with their type (several tables, as `stat all`).
	Prefix bool
}

type jsonStat struct {
	Namespace      string   `json:"namespace"`
	Kind           string   `json:"kind"`
	Name           string   `json:"name"`
	Meshed         string   `json:"meshed,omitempty"`
	Success        *float64 `json:"success"`
	RPS            *float64 `json:"rps"`
	LatencyMsP50   *uint64  `json:"latency_ms_p50"`
	LatencyMsP95   *uint64  `json:"latency_ms_p95"`
	LatencyMsP99   *uint64  `json:"latency_ms_p99"`
	TCPConnections *uint64  `json:"tcp_open_connections"`
	TCPReadBytes   *float64 `json:"tcp_read_bytes_rate,omitempty"`
	TCPWriteBytes  *float64 `json:"tcp_write_bytes_rate,omitempty"`
}

// WriteStat prints a StatSummary answer.
func WriteStat(w io.Writer, ok *vizapi.StatSummaryOk, o StatOptions) error {
	var rows []vizapi.StatRow
	for _, t := range ok.StatTables {
		rows = append(rows, t.PodGroup.Rows...)
	}
	if o.Format == JSON {
		out := make([]jsonStat, 0, len(rows))
		for _, r := range rows {
			j := jsonStat{Namespace: r.Resource.Namespace, Kind: r.Resource.Type, Name: r.Resource.Name}
			if r.Resource.Type != vizapi.Authority {
				j.Meshed = fmt.Sprintf("%d/%d", r.MeshedPodCount, r.RunningPodCount)
			}
			if st := r.Stats; st != nil {
				if total := st.SuccessCount + st.FailureCount; total > 0 {
					j.Success = ptr(float64(st.SuccessCount) / float64(total))
				}
				if d := window(r.TimeWindow); d > 0 {
					j.RPS = ptr(float64(st.SuccessCount+st.FailureCount) / d.Seconds())
				}
				j.LatencyMsP50, j.LatencyMsP95, j.LatencyMsP99 = ptr(st.LatencyMsP50), ptr(st.LatencyMsP95), ptr(st.LatencyMsP99)
			}
			if t := r.TCPStats; t != nil {
				j.TCPConnections = ptr(t.OpenConnections)
				if d := window(r.TimeWindow); d > 0 {
					j.TCPReadBytes = ptr(float64(t.ReadBytesTotal) / d.Seconds())
					j.TCPWriteBytes = ptr(float64(t.WriteBytesTotal) / d.Seconds())
				}
			}
			out = append(out, j)
		}
		return writeJSON(w, out)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No traffic found.")
		return err
	}
	for i, t := range ok.StatTables {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := writeStatTable(w, t.PodGroup.Rows, o); err != nil {
			return err
		}
	}
	return nil
}

func writeStatTable(w io.Writer, rows []vizapi.StatRow, o StatOptions) error {
	if len(rows) == 0 {
		return nil
	}
	name := func(r vizapi.StatRow) string {
		if o.Prefix {
			return ShortType(r.Resource.Type) + "/" + r.Resource.Name
		}
		return r.Resource.Name
	}
	var widths []int
	head := []string{}
	if o.AllNamespaces {
		n := len("NAMESPACE")
		for _, r := range rows {
			n = max(n, len(r.Resource.Namespace))
		}
		widths = append(widths, n)
		head = append(head, "NAMESPACE")
	}
	n := len("NAME")
	for _, r := range rows {
		n = max(n, len(name(r)))
	}
	widths = append(widths, n)
	head = append(head, "NAME")
	pods := rows[0].Resource.Type == vizapi.Pod
	if pods {
		head = append(head, "STATUS")
	}
	head = append(head, "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN")
	if o.Format == Wide {
		head = append(head, "READ_BYTES/SEC", "WRITE_BYTES/SEC")
	}
	tw := newWriter(w)
	row(tw, widths, head...)
	for _, r := range rows {
		var cells []string
		if o.AllNamespaces {
			cells = append(cells, r.Resource.Namespace)
		}
		cells = append(cells, name(r))
		if pods {
			cells = append(cells, r.Status)
		}
		meshed := "-"
		if r.Resource.Type != vizapi.Authority {
			meshed = fmt.Sprintf("%d/%d", r.MeshedPodCount, r.RunningPodCount)
		}
		cells = append(cells, meshed)
		d := window(r.TimeWindow)
		if st := r.Stats; st != nil {
			total := st.SuccessCount + st.FailureCount
			cells = append(cells, percent(st.SuccessCount, total), rps(total, d), ms(st.LatencyMsP50), ms(st.LatencyMsP95), ms(st.LatencyMsP99))
		} else {
			cells = append(cells, "-", "-", "-", "-", "-")
		}
		if t := r.TCPStats; t != nil && (r.Stats != nil || t.OpenConnections > 0 || t.ReadBytesTotal > 0 || t.WriteBytesTotal > 0) {
			cells = append(cells, fmt.Sprint(t.OpenConnections))
			if o.Format == Wide {
				cells = append(cells, bytesRate(t.ReadBytesTotal, d), bytesRate(t.WriteBytesTotal, d))
			}
		} else {
			cells = append(cells, "-")
			if o.Format == Wide {
				cells = append(cells, "-", "-")
			}
		}
		row(tw, widths, cells...)
	}
	return tw.Flush()
}

func bytesRate(n uint64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fB/s", float64(n)/d.Seconds())
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Secured and unsecured marks of the edges table.
const (
	okStatus = "√"
	noStatus = "×"
)

type jsonEdge struct {
	Src          string `json:"src"`
	SrcNamespace string `json:"src_namespace"`
	Dst          string `json:"dst"`
	DstNamespace string `json:"dst_namespace"`
	ClientID     string `json:"client_id"`
	ServerID     string `json:"server_id"`
	NoTLSReason  string `json:"no_tls_reason"`
}

// WriteEdges prints an Edges answer: SRC DST SRC_NS DST_NS SECURED, or with wide
// CLIENT_ID SERVER_ID MSG instead of SECURED.
func WriteEdges(w io.Writer, ok *vizapi.EdgesOk, format string) error {
	if format == JSON {
		out := make([]jsonEdge, 0, len(ok.Edges))
		for _, e := range ok.Edges {
			out = append(out, jsonEdge{Src: e.Src.Name, SrcNamespace: e.Src.Namespace, Dst: e.Dst.Name, DstNamespace: e.Dst.Namespace,
				ClientID: e.ClientID, ServerID: e.ServerID, NoTLSReason: e.NoIdentityMsg})
		}
		return writeJSON(w, out)
	}
	if len(ok.Edges) == 0 {
		_, err := fmt.Fprintln(w, "No edges found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, padding, ' ', 0)
	head := []string{"SRC", "DST", "SRC_NS", "DST_NS"}
	if format == Wide {
		head = append(head, "CLIENT_ID", "SERVER_ID", "MSG")
	} else {
		head = append(head, "SECURED")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, e := range ok.Edges {
		cells := []string{e.Src.Name, e.Dst.Name, e.Src.Namespace, e.Dst.Namespace}
		if format == Wide {
			cells = append(cells, dash(e.ClientID), dash(e.ServerID), dash(e.NoIdentityMsg))
		} else if e.ClientID != "" && e.ServerID != "" {
			cells = append(cells, okStatus)
		} else {
			cells = append(cells, noStatus)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type jsonRoute struct {
	Route            string   `json:"route"`
	Authority        string   `json:"authority"`
	Success          *float64 `json:"success,omitempty"`
	RPS              *float64 `json:"rps,omitempty"`
	EffectiveSuccess *float64 `json:"effective_success,omitempty"`
	EffectiveRPS     *float64 `json:"effective_rps,omitempty"`
	ActualSuccess    *float64 `json:"actual_success,omitempty"`
	ActualRPS        *float64 `json:"actual_rps,omitempty"`
	LatencyMsP50     *uint64  `json:"latency_ms_p50"`
	LatencyMsP95     *uint64  `json:"latency_ms_p95"`
	LatencyMsP99     *uint64  `json:"latency_ms_p99"`
}

// WriteRoutes prints a TopRoutes answer: ROUTE SERVICE SUCCESS RPS LATENCY_P50
// LATENCY_P95 LATENCY_P99, or with wide EFFECTIVE_SUCCESS EFFECTIVE_RPS ACTUAL_SUCCESS
// ACTUAL_RPS instead of SUCCESS RPS; a "==> resource <==" line above each table when
// there are several.
func WriteRoutes(w io.Writer, ok *vizapi.TopRoutesOk, format string) error {
	if format == JSON {
		out := map[string][]jsonRoute{}
		for _, t := range ok.Routes {
			rs := []jsonRoute{}
			for _, r := range t.Rows {
				j := jsonRoute{Route: r.Route, Authority: r.Authority}
				if st := r.Stats; st != nil {
					d := window(r.TimeWindow)
					eff, act := st.SuccessCount+st.FailureCount, st.ActualSuccessCount+st.ActualFailureCount
					succ, rate := ratio(st.SuccessCount, eff), perSecond(eff, d)
					j.Success, j.RPS = succ, rate
					j.EffectiveSuccess, j.EffectiveRPS = succ, rate
					j.ActualSuccess, j.ActualRPS = ratio(st.ActualSuccessCount, act), perSecond(act, d)
					j.LatencyMsP50, j.LatencyMsP95, j.LatencyMsP99 = ptr(st.LatencyMsP50), ptr(st.LatencyMsP95), ptr(st.LatencyMsP99)
				}
				rs = append(rs, j)
			}
			out[t.Resource] = rs
		}
		return writeJSON(w, out)
	}
	tables := 0
	for _, t := range ok.Routes {
		if len(t.Rows) > 0 {
			tables++
		}
	}
	if tables == 0 {
		_, err := fmt.Fprintln(w, "No traffic found.")
		return err
	}
	first := true
	for _, t := range ok.Routes {
		if len(t.Rows) == 0 {
			continue
		}
		if tables > 1 {
			if !first {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "==> %s <==\n", t.Resource)
		}
		first = false
		if err := writeRouteTable(w, t.Rows, format); err != nil {
			return err
		}
	}
	return nil
}

func ratio(ok, total uint64) *float64 {
	if total == 0 {
		return nil
	}
	return ptr(float64(ok) / float64(total))
}

func perSecond(n uint64, d time.Duration) *float64 {
	if d <= 0 {
		return nil
	}
	return ptr(float64(n) / d.Seconds())
}

// serviceName is the service part of an authority ("web" of "web.ns.svc.cluster.local").
func serviceName(authority string) string {
	name, _, _ := strings.Cut(authority, ".")
	return name
}

func writeRouteTable(w io.Writer, rows []vizapi.RouteRow, format string) error {
	widths := []int{len("ROUTE")}
	for _, r := range rows {
		widths[0] = max(widths[0], len(r.Route))
	}
	head := []string{"ROUTE", "SERVICE"}
	if format == Wide {
		head = append(head, "EFFECTIVE_SUCCESS", "EFFECTIVE_RPS", "ACTUAL_SUCCESS", "ACTUAL_RPS")
	} else {
		head = append(head, "SUCCESS", "RPS")
	}
	head = append(head, "LATENCY_P50", "LATENCY_P95", "LATENCY_P99")
	tw := newWriter(w)
	row(tw, widths, head...)
	for _, r := range rows {
		cells := []string{r.Route, serviceName(r.Authority)}
		st := r.Stats
		if st == nil {
			n := 5
			if format == Wide {
				n = 7
			}
			for range n {
				cells = append(cells, "-")
			}
			row(tw, widths, cells...)
			continue
		}
		d := window(r.TimeWindow)
		eff := st.SuccessCount + st.FailureCount
		cells = append(cells, percent(st.SuccessCount, eff), rps(eff, d))
		if format == Wide {
			act := st.ActualSuccessCount + st.ActualFailureCount
			cells = append(cells, percent(st.ActualSuccessCount, act), rps(act, d))
		}
		cells = append(cells, ms(st.LatencyMsP50), ms(st.LatencyMsP95), ms(st.LatencyMsP99))
		row(tw, widths, cells...)
	}
	return tw.Flush()
}
