package webhook

import (
	"bytes"
	"encoding/json"
	"sync"
)

// buffers holds the buffers a review is read into, its object and patched copy encoded into
// (JSONPatch), its patch written into (PatchWriter) and its answer encoded into: a review
// allocates none of them, so there is less garbage and fewer collections in the tail of
// admissions.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest buffer put back in buffers: a rare huge review's buffer is
// left to the garbage collector rather than kept.
const maxPooledBuffer = 256 << 10

// getBuffer returns an empty pooled buffer; releaseBuffer gives it back.
func getBuffer() *bytes.Buffer {
	buf := buffers.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

func releaseBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		buffers.Put(buf)
	}
}

// encodePooled encodes v as json.Marshal does (HTML characters escaped, no indentation)
// into a pooled buffer, without the newline json.Encoder ends with; the error is
// encoding/json's.
func encodePooled(v any) (*bytes.Buffer, error) {
	buf := getBuffer()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		releaseBuffer(buf)
		return nil, err
	}
	buf.Truncate(buf.Len() - 1)
	return buf, nil
}
