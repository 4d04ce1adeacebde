// Package relaybuf lends the buffers bodies are relayed through: a small one first, and a
// large one once a read fills the small one. Most bodies (RPCs, API calls) fit in the
// small buffer, which a relay holds for as long as it waits for the body's next bytes;
// a large body moves in large reads and writes, with fewer system calls per byte.
package relaybuf

import "sync"

const (
	// Small is the size of the first buffer of a relay.
	Small = 16 << 10
	// Large is the size of the buffer a relay moves on to once a read fills Small.
	Large = 64 << 10
)

var (
	small = sync.Pool{New: func() any { return new([Small]byte) }}
	large = sync.Pool{New: func() any { return new([Large]byte) }}
)

// Lease is the buffer of one relay; its zero value holds none. It is not safe for
// concurrent use.
type Lease struct {
	small *[Small]byte
	large *[Large]byte
}

// Bytes returns the buffer to read into next, taking a small one on first use.
func (l *Lease) Bytes() []byte {
	if l.large != nil {
		return l.large[:]
	}
	if l.small == nil {
		l.small = small.Get().(*[Small]byte)
	}
	return l.small[:]
}

// Read records that a read put n bytes into the buffer Bytes returned, once they have
// been used: a read that filled the small buffer moves the lease to a large one.
func (l *Lease) Read(n int) {
	if l.large == nil && l.small != nil && n == Small {
		small.Put(l.small)
		l.small = nil
		l.large = large.Get().(*[Large]byte)
	}
}

// Release gives the buffer back; the lease may be used again.
func (l *Lease) Release() {
	if l.small != nil {
		small.Put(l.small)
		l.small = nil
	}
	if l.large != nil {
		large.Put(l.large)
		l.large = nil
	}
}
