// Package accesslog writes the proxy's HTTP access log, one line per request in
// Linkerd's formats (LINKERD2_PROXY_ACCESS_LOG=apache or json), off the request path:
// requests hand their Entry to a bounded queue that one goroutine formats and writes; when
// the queue is full the entry is dropped and counted, so a slow log never holds traffic.
package accesslog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Format is how entries are written.
type Format int

// Formats, as LINKERD2_PROXY_ACCESS_LOG names them.
const (
	// Apache is the Apache Common Log Format as Linkerd writes it:
	//	10.42.0.63:51160 web.ns.serviceaccount.identity.linkerd.cluster.local - [2022-08-23T20:28:20.071809491Z] "GET http://webapp:7000/ HTTP/2.0" 200
	Apache Format = iota + 1
	// JSON is one object per line with Linkerd's fields, keys in alphabetical order.
	JSON
)

// ParseFormat parses "apache" or "json" (any case, surrounding spaces ignored).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "apache":
		return Apache, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("unknown access log format %q: want apache or json", s)
}

// Entry is one request as the log records it. Its strings are the request's own (no
// copy is made on the request path).
type Entry struct {
	// Start is when the request arrived.
	Start time.Time
	// Client is the peer's address; ClientID its verified mesh identity ("" without one).
	Client   netip.AddrPort
	ClientID string
	// Method, URI (as the request line or :path gave it; absolute for HTTP/2) and Version
	// ("HTTP/1.1", "HTTP/2.0").
	Method, URI, Version string
	// Host, UserAgent, RequestBytes (Content-Length) and TraceID (x-b3-traceid, else
	// x-request-id, else x-amzn-trace-id) are the request's header fields, "" when absent.
	Host, UserAgent, RequestBytes, TraceID string
	// Status is the response status; ResponseBytes its Content-Length ("" when absent).
	Status        int
	ResponseBytes string
	// Total is the time from the request's arrival to the response headers; Processing
	// the part of it spent in the proxy (Total less the wait for the application's
	// response headers).
	Total, Processing time.Duration
}

// DefaultCapacity is the number of entries a Logger queues before it drops them.
const DefaultCapacity = 4096

// Logger queues entries and writes them with one goroutine (Run).
type Logger struct {
	format  Format
	w       io.Writer
	queue   chan Entry
	dropped *atomic.Uint64
}

// New returns a Logger writing to w in format, queueing up to capacity entries
// (DefaultCapacity when not positive). dropped, when not nil, counts entries dropped
// because the queue was full.
func New(w io.Writer, format Format, capacity int, dropped *atomic.Uint64) *Logger {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	if dropped == nil {
		dropped = new(atomic.Uint64)
	}
	return &Logger{format: format, w: w, queue: make(chan Entry, capacity), dropped: dropped}
}

// Log queues e without blocking; a full queue drops it (counted). It does not allocate.
func (l *Logger) Log(e *Entry) {
	select {
	case l.queue <- *e:
	default:
		l.dropped.Add(1)
	}
}

// Dropped returns how many entries were dropped.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Run writes queued entries until ctx ends, then writes those still queued and returns.
// Writes are buffered and flushed whenever the queue is empty.
func (l *Logger) Run(ctx context.Context) {
	bw := bufio.NewWriterSize(l.w, 32<<10)
	var line []byte
	write := func(e *Entry) {
		line = l.AppendLine(line[:0], e)
		bw.Write(line)
	}
	for {
		select {
		case e := <-l.queue:
			write(&e)
			for drained := false; !drained; {
				select {
				case e := <-l.queue:
					write(&e)
				default:
					drained = true
				}
			}
			bw.Flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-l.queue:
					write(&e)
				default:
					bw.Flush()
					return
				}
			}
		}
	}
}

// AppendLine appends e formatted as one line, newline included, to b.
func (l *Logger) AppendLine(b []byte, e *Entry) []byte {
	if l.format == JSON {
		return appendJSON(b, e)
	}
	return appendApache(b, e)
}

// timestamp renders t as Linkerd does: UTC, RFC 3339 with nanoseconds.
func timestamp(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
}

// clientAddr renders the client's address, an IPv4 client of a dual-stack listener
// (an IPv4-mapped IPv6 address) as plain IPv4.
func clientAddr(e *Entry) string {
	return netip.AddrPortFrom(e.Client.Addr().Unmap(), e.Client.Port()).String()
}

func appendApache(b []byte, e *Entry) []byte {
	b = append(b, clientAddr(e)...)
	b = append(b, ' ')
	if e.ClientID != "" {
		b = append(b, e.ClientID...)
	} else {
		b = append(b, '-')
	}
	b = append(b, " - ["...)
	b = timestamp(b, e.Start)
	b = append(b, "] \""...)
	b = append(b, e.Method...)
	b = append(b, ' ')
	b = append(b, e.URI...)
	b = append(b, ' ')
	b = append(b, e.Version...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	return append(b, '\n')
}

// jsonEntry is an Entry's JSON object: Linkerd's field names, in alphabetical order;
// durations are strings of nanoseconds, as Linkerd writes them.
type jsonEntry struct {
	ClientAddr    string `json:"client.addr"`
	ClientID      string `json:"client.id"`
	Host          string `json:"host"`
	Method        string `json:"method"`
	ProcessingNS  string `json:"processing_ns"`
	RequestBytes  string `json:"request_bytes"`
	ResponseBytes string `json:"response_bytes"`
	Status        int    `json:"status"`
	Timestamp     string `json:"timestamp"`
	TotalNS       string `json:"total_ns"`
	TraceID       string `json:"trace_id"`
	URI           string `json:"uri"`
	UserAgent     string `json:"user_agent"`
	Version       string `json:"version"`
}

func appendJSON(b []byte, e *Entry) []byte {
	id := e.ClientID
	if id == "" {
		id = "-"
	}
	out, err := json.Marshal(jsonEntry{
		ClientAddr: clientAddr(e), ClientID: id, Host: e.Host, Method: e.Method,
		ProcessingNS: strconv.FormatInt(e.Processing.Nanoseconds(), 10), RequestBytes: e.RequestBytes,
		ResponseBytes: e.ResponseBytes, Status: e.Status, Timestamp: string(timestamp(nil, e.Start)),
		TotalNS: strconv.FormatInt(e.Total.Nanoseconds(), 10), TraceID: e.TraceID, URI: e.URI,
		UserAgent: e.UserAgent, Version: e.Version,
	})
	if err != nil { // only strings and numbers: cannot happen
		return b
	}
	b = append(b, out...)
	return append(b, '\n')
}
