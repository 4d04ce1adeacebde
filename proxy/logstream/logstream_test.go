package logstream

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// TestTee checks that records reach the log and, as JSON lines with their attributes, each
// subscriber; that the log's level decides for both; and that a full subscriber loses lines
// without blocking.
func TestTee(t *testing.T) {
	var out bytes.Buffer
	h := New()
	log := slog.New(h.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))).With("component", "inbound")
	log.Info("before any subscriber")
	ch, done := h.Subscribe(1)
	log.Debug("below the level")
	log.Info("accepted", "peer", "10.0.0.1:5555")
	log.Info("dropped: the buffer holds one line")
	select {
	case line := <-ch:
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		if m["msg"] != "accepted" || m["peer"] != "10.0.0.1:5555" || m["component"] != "inbound" {
			t.Errorf("line %s", line)
		}
	default:
		t.Fatal("no line for the subscriber")
	}
	if h.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", h.Dropped())
	}
	done()
	done()
	if _, open := <-ch; open || h.Subscribers() != 0 {
		t.Error("subscription not ended")
	}
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 3 {
		t.Errorf("log has %d lines, want 3:\n%s", n, out.String())
	}
}
