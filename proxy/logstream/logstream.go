// Package logstream copies the proxy's log records, as JSON lines, to live subscribers (GET
// /logs.json on the admin port) besides the handler that writes the log. With no subscriber
// a record costs one atomic load more than the log itself.
package logstream

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Hub fans log lines out to subscribers. A subscriber that does not keep up loses lines
// (counted by Dropped) rather than slowing the proxy down.
type Hub struct {
	mu      sync.Mutex
	subs    map[chan []byte]struct{}
	n       atomic.Int32
	dropped atomic.Uint64
}

// New returns a hub without subscribers.
func New() *Hub { return &Hub{subs: map[chan []byte]struct{}{}} }

// Subscribe returns a channel of JSON log lines (each ending in a newline) buffered for buf
// lines, and the function that ends the subscription and closes the channel.
func (h *Hub) Subscribe(buf int) (<-chan []byte, func()) {
	ch := make(chan []byte, max(buf, 1))
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.n.Add(1)
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, ch)
			h.n.Add(-1)
			h.mu.Unlock()
			close(ch)
		})
	}
}

// Subscribers is the number of live subscriptions.
func (h *Hub) Subscribers() int { return int(h.n.Load()) }

// Dropped is the number of lines subscribers lost because their buffer was full.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Write sends one encoded line to every subscriber (slog's JSON handler writes each record
// with one call).
func (h *Hub) Write(p []byte) (int, error) {
	line := append([]byte(nil), p...)
	h.mu.Lock()
	for ch := range h.subs {
		select {
		case ch <- line:
		default:
			h.dropped.Add(1)
		}
	}
	h.mu.Unlock()
	return len(p), nil
}

// Handler returns a handler that passes every record to next and, while the hub has
// subscribers, also sends it to them as JSON. next decides which records are enabled.
func (h *Hub) Handler(next slog.Handler) slog.Handler {
	return &tee{hub: h, next: next, json: slog.NewJSONHandler(io.Writer(h), &slog.HandlerOptions{Level: slog.LevelDebug - 8})}
}

type tee struct {
	hub  *Hub
	next slog.Handler
	json slog.Handler
}

func (t *tee) Enabled(ctx context.Context, l slog.Level) bool { return t.next.Enabled(ctx, l) }

func (t *tee) Handle(ctx context.Context, r slog.Record) error {
	if t.hub.n.Load() > 0 {
		_ = t.json.Handle(ctx, r.Clone())
	}
	return t.next.Handle(ctx, r)
}

func (t *tee) WithAttrs(as []slog.Attr) slog.Handler {
	return &tee{hub: t.hub, next: t.next.WithAttrs(as), json: t.json.WithAttrs(as)}
}

func (t *tee) WithGroup(name string) slog.Handler {
	return &tee{hub: t.hub, next: t.next.WithGroup(name), json: t.json.WithGroup(name)}
}
