package app

import "testing"

// TestMeshIdleConnectionMemory: a client connection to the outbound proxy that has
// carried a request and waits for the next holds one goroutine whose stack the runtime
// shrinks to 4 KiB (the stacks in use grow by less than 6 KiB per connection: other
// goroutines' stacks vary too) and no read or write buffer (the heap grows by less than
// 8 KiB, the size of either, per connection; the clients' sockets are in this process;
// with the race detector, whose objects are larger, 12 KiB).
func TestMeshIdleConnectionMemory(t *testing.T) {
	const n = 500
	m := startMeshCP(t)
	client, _ := meshPair(t, m, benchApp(t), tapEnv)
	_, out, _ := client.Addrs()
	idleConn(t, out)
	before := memInUse()
	for range n {
		idleConn(t, out)
	}
	after := memInUse()
	heap := (after.heap - before.heap) / n
	stack := (after.stack - before.stack) / n
	goroutines := float64(after.goroutines-before.goroutines) / n
	t.Logf("per idle connection: %d heap bytes, %d stack bytes, %.2f goroutines", heap, stack, goroutines)
	if goroutines >= 1.5 {
		t.Errorf("%.2f goroutines per idle connection, want 1", goroutines)
	}
	if !raceEnabled && stack >= 6<<10 {
		t.Errorf("%d bytes of goroutine stack per idle connection, want about 4 KiB (the stack of a waiting connection is too deep for the runtime to shrink it from 8 KiB)", stack)
	}
	limit := int64(8 << 10)
	if raceEnabled {
		limit = 12 << 10 // instrumented objects are larger
	}
	if heap >= limit {
		t.Errorf("%d heap bytes per idle connection, want less than %d (a read or write buffer is held while idle)", heap, limit)
	}
}
