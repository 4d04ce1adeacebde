package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func entry() *Entry {
	return &Entry{
		Start:  time.Date(2022, 8, 23, 20, 28, 20, 71809491, time.UTC),
		Client: netip.MustParseAddrPort("10.42.0.63:51160"), ClientID: "web.ns.serviceaccount.identity.linkerd.cluster.local",
		Method: "GET", URI: "http://webapp:7000/books?id=1", Version: "HTTP/2.0", Host: "webapp:7000",
		UserAgent: `curl/8 "quoted"`, RequestBytes: "", TraceID: "abc", Status: 200, ResponseBytes: "19627",
		Total: 14441135 * time.Nanosecond, Processing: 39826 * time.Nanosecond,
	}
}

func TestApacheLine(t *testing.T) {
	l := New(nil, Apache, 1, nil)
	got := string(l.AppendLine(nil, entry()))
	want := `10.42.0.63:51160 web.ns.serviceaccount.identity.linkerd.cluster.local - [2022-08-23T20:28:20.071809491Z] "GET http://webapp:7000/books?id=1 HTTP/2.0" 200` + "\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	e := entry()
	e.ClientID, e.URI, e.Version, e.Start = "", "/ping", "HTTP/1.1", e.Start.Add(-20*time.Millisecond)
	e.Client = netip.MustParseAddrPort("[::ffff:10.42.0.63]:51160") // a dual-stack listener's IPv4 client
	got = string(l.AppendLine(nil, e))
	want = `10.42.0.63:51160 - - [2022-08-23T20:28:20.051809491Z] "GET /ping HTTP/1.1" 200` + "\n"
	if got != want {
		t.Errorf("without a client identity: got %q\nwant %q", got, want)
	}
}

func TestJSONLine(t *testing.T) {
	l := New(nil, JSON, 1, nil)
	line := l.AppendLine(nil, entry())
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one JSON object per line: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"client.addr": "10.42.0.63:51160", "client.id": "web.ns.serviceaccount.identity.linkerd.cluster.local",
		"host": "webapp:7000", "method": "GET", "processing_ns": "39826", "request_bytes": "",
		"response_bytes": "19627", "status": float64(200), "timestamp": "2022-08-23T20:28:20.071809491Z",
		"total_ns": "14441135", "trace_id": "abc", "uri": "http://webapp:7000/books?id=1",
		"user_agent": `curl/8 "quoted"`, "version": "HTTP/2.0",
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	e := entry()
	e.ClientID = ""
	if err := json.Unmarshal(l.AppendLine(nil, e), &got); err != nil || got["client.id"] != "-" {
		t.Errorf("without a client identity: client.id %#v (%v), want \"-\"", got["client.id"], err)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"apache": Apache, " JSON ": JSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "/var/log/access.log", "common"} {
		if _, err := ParseFormat(in); err == nil || !strings.Contains(err.Error(), "apache or json") {
			t.Errorf("ParseFormat(%q) error %v does not say what is accepted", in, err)
		}
	}
}

// TestFullQueueDropsAndCounts: Log never blocks; entries beyond the queue's capacity
// are dropped and counted, and those queued are written when Run starts and before it
// returns.
func TestFullQueueDropsAndCounts(t *testing.T) {
	var out bytes.Buffer // Run writes from this goroutine
	l := New(&out, Apache, 2, nil)
	for range 5 {
		l.Log(entry())
	}
	if d := l.Dropped(); d != 3 {
		t.Fatalf("dropped %d, want 3", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx) // returns at once, after writing what is queued
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("wrote %d lines, want the 2 queued:\n%s", n, out.String())
	}
}

func TestLogDoesNotAllocate(t *testing.T) {
	l := New(nil, JSON, 1, nil)
	e := entry()
	if a := testing.AllocsPerRun(100, func() { l.Log(e) }); a != 0 {
		t.Errorf("Log allocates %v times", a)
	}
}
