package viztap

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
)

// Top aggregates tap events into the table `linkerd viz top` shows: per source,
// destination, method and path, the number of completed requests, their best, worst and
// last latency (request start to response end) and the share that succeeded (HTTP status
// below 500 and, for gRPC, status OK). The zero value is ready to use; it is not safe
// for concurrent use.
type Top struct {
	rows    map[topKey]*topRow
	pending map[streamKey]pendingReq
}

type topKey struct{ src, dst, method, path string }

type topRow struct {
	topKey
	count, ok         int
	best, worst, last time.Duration
}

// streamKey identifies one request in the events of a tap: the proxy that saw it (its
// direction and addresses) and its stream ID.
type streamKey struct {
	dir      pbtap.TapEvent_ProxyDirection
	src, dst string
	base     uint32
	stream   uint64
}

type pendingReq struct {
	key    topKey
	status uint32
}

// maxPending bounds the requests Top waits for the end of; beyond it the oldest are
// forgotten (a tap that lost events must not grow without bound).
const maxPending = 10000

// Add records an event.
func (t *Top) Add(ev *pbtap.TapEvent) {
	if t.rows == nil {
		t.rows, t.pending = map[topKey]*topRow{}, map[streamKey]pendingReq{}
	}
	src := end{"src", ev.GetSource(), ev.GetSourceMeta().GetLabels()}
	dst := end{"dst", ev.GetDestination(), ev.GetDestinationMeta().GetLabels()}
	sk := streamKey{dir: ev.GetProxyDirection(), src: src.addr(), dst: dst.addr()}
	switch e := ev.GetHttp().GetEvent().(type) {
	case *pbtap.TapEvent_Http_RequestInit_:
		sk.base, sk.stream = e.RequestInit.GetId().GetBase(), e.RequestInit.GetId().GetStream()
		if len(t.pending) >= maxPending {
			clear(t.pending)
		}
		t.pending[sk] = pendingReq{key: topKey{src.name(), dst.name(), Method(e.RequestInit), e.RequestInit.GetPath()}}
	case *pbtap.TapEvent_Http_ResponseInit_:
		sk.base, sk.stream = e.ResponseInit.GetId().GetBase(), e.ResponseInit.GetId().GetStream()
		if p, ok := t.pending[sk]; ok {
			p.status = e.ResponseInit.GetHttpStatus()
			t.pending[sk] = p
		}
	case *pbtap.TapEvent_Http_ResponseEnd_:
		r := e.ResponseEnd
		sk.base, sk.stream = r.GetId().GetBase(), r.GetId().GetStream()
		p, ok := t.pending[sk]
		if !ok {
			return
		}
		delete(t.pending, sk)
		row := t.rows[p.key]
		if row == nil {
			row = &topRow{topKey: p.key}
			t.rows[p.key] = row
		}
		lat := r.GetSinceRequestInit().AsDuration()
		row.count++
		row.last = lat
		if row.count == 1 || lat < row.best {
			row.best = lat
		}
		if lat > row.worst {
			row.worst = lat
		}
		grpc, isGRPC := r.GetEos().GetEnd().(*pbtap.Eos_GrpcStatusCode)
		if p.status < 500 && (!isGRPC || grpc.GrpcStatusCode == 0) {
			row.ok++
		}
	}
}

// Write prints the table, the most frequent rows first; hideSources drops the Source
// column (and merges its rows).
func (t *Top) Write(w io.Writer, hideSources bool) error {
	merged := map[topKey]*topRow{}
	for k, r := range t.rows {
		if hideSources {
			k.src = ""
		}
		m := merged[k]
		if m == nil {
			cp := *r
			cp.topKey = k
			merged[k] = &cp
			continue
		}
		m.count += r.count
		m.ok += r.ok
		m.best, m.worst, m.last = min(m.best, r.best), max(m.worst, r.worst), r.last
	}
	rows := make([]*topRow, 0, len(merged))
	for _, r := range merged {
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.count != b.count {
			return a.count > b.count
		}
		if a.path != b.path {
			return a.path < b.path
		}
		return a.src+a.dst+a.method < b.src+b.dst+b.method
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if !hideSources {
		fmt.Fprint(tw, "Source\t")
	}
	fmt.Fprintln(tw, "Destination\tMethod\tPath\tCount\tBest\tWorst\tLast\tSuccess Rate")
	for _, r := range rows {
		if !hideSources {
			fmt.Fprintf(tw, "%s\t", r.src)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.2f%%\n", r.dst, r.method, r.path, r.count,
			latency(r.best), latency(r.worst), latency(r.last), 100*float64(r.ok)/float64(r.count))
	}
	return tw.Flush()
}

func latency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Microsecond * 100).String()
	}
	return d.Round(time.Microsecond).String()
}

// name is an end's pod name when tap knows it, else its address.
func (e end) name() string {
	if p := e.labels["pod"]; p != "" {
		return p
	}
	a := e.addr()
	return a[len(e.dir)+1:]
}
