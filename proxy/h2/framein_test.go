package h2

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"golang.org/x/net/http2"
)

// readLog is an io.Reader over r that notes how many bytes each read returned.
type readLog struct {
	r     io.Reader
	reads []int
}

func (l *readLog) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.reads = append(l.reads, n)
	return n, err
}

// TestLargeDataFramesAfterTheFirstAreReadStraightIntoChunks: after a DATA frame read
// straight into its chunk, the next frame's header is read alone, so that the payload of
// a following 64 KiB DATA frame is read from the connection in one read straight into
// its chunk (none of it through the reader's buffer); a frame that is not DATA still
// reads, and every frame's payload arrives intact.
func TestLargeDataFramesAfterTheFirstAreReadStraightIntoChunks(t *testing.T) {
	var wire bytes.Buffer
	fr := http2.NewFramer(&wire, nil)
	payloads := [][]byte{framePattern(1, 64<<10), framePattern(2, 64<<10), framePattern(3, 40000)}
	for _, p := range payloads {
		if err := fr.WriteData(1, false, p); err != nil {
			t.Fatal(err)
		}
	}
	fr.WritePing(false, [8]byte{1, 2, 3})
	log := &readLog{r: &wire}
	in := newFrameIn(log)
	for i, want := range payloads {
		before := len(log.reads)
		_, d, err := in.next()
		if err != nil || d == nil {
			t.Fatalf("frame %d: %v, DATA %v", i, err, d != nil)
		}
		if !bytes.Equal(d.data, want) {
			t.Fatalf("frame %d: payload differs from the %d bytes sent", i, len(want))
		}
		d.release()
		if got := fmt.Sprint(log.reads[before:]); i > 0 && got != fmt.Sprint([]int{frameHeaderLen, len(want)}) {
			t.Errorf("frame %d read from the connection in reads of %s, want its header alone then its payload whole", i, got)
		}
	}
	f, d, err := in.next()
	if _, ok := f.(*http2.PingFrame); !ok || d != nil || err != nil {
		t.Fatalf("after the DATA frames: %v, %v, %v; want the PING", f, d, err)
	}
}
