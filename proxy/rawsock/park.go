package rawsock

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"syscall"
	"time"
)

// Poller holds idle connections without a goroutine each: a parked connection is watched
// by one epoll instance shared by all of them (one-shot: each parking reports once), and
// given back to its owner on a new goroutine when input arrives or the peer hangs up.
// Go's own netpoller keeps its registration of the socket meanwhile, so the connection
// reads and writes as before once it is resumed.
//
// A parked connection belongs to the Poller until it is handed back: its owner neither
// reads, writes nor closes it. Each parking ends in exactly one call of either ready or
// expire.
type Poller struct {
	epfd int
	// wakeR and wakeW are a pipe whose read end is in the epoll set: a byte written to
	// it interrupts the wait (an earlier deadline, Close).
	wakeR, wakeW int
	done         chan struct{}
	closeFDs     sync.Once

	mu     sync.Mutex
	closed bool
	nextID uint64
	parked map[uint64]*parking
	// next is the earliest deadline of the parked connections the loop is waiting for.
	next time.Time
}

// parking is one parked connection.
type parking struct {
	fd       int
	deadline time.Time
	ready    func()
	expire   func()
}

// pipeID is the epoll data of the wake pipe; connections are numbered from 1.
const pipeID = 0

// NewPoller starts a Poller; Close stops it.
func NewPoller() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating the idle connections' epoll instance: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("creating the idle connections' wake pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil, fmt.Errorf("watching the idle connections' wake pipe: %w", err)
	}
	p := &Poller{epfd: epfd, wakeR: pipe[0], wakeW: pipe[1], done: make(chan struct{}), parked: map[uint64]*parking{}}
	go p.loop()
	return p, nil
}

// Park hands c, waiting for input with nothing unread, to the poller. When input
// arrives or the peer closes or resets the connection, ready runs on a new goroutine:
// the connection is its owner's again. When deadline passes first, or the Poller is
// closed, expire runs instead (on the poller's goroutine, or Close's: it must not block)
// and must close c. Park reports false, and calls neither, when the Poller is closed or
// the socket cannot be watched; the caller then keeps c.
func (p *Poller) Park(c *Conn, deadline time.Time, ready, expire func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.nextID++
	id := p.nextID
	pk := &parking{fd: -1, deadline: deadline, ready: ready, expire: expire}
	var ctlErr error
	err := c.rc.Control(func(fd uintptr) {
		pk.fd = int(fd)
		// Level-triggered and one-shot: input already there when it is added is
		// reported at once, and nothing more after the first report.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(id), Pad: int32(id >> 32)}
		ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, pk.fd, &ev)
	})
	if err != nil || ctlErr != nil {
		return false
	}
	p.parked[id] = pk
	if p.next.IsZero() || deadline.Before(p.next) {
		p.next = deadline
		p.poke()
	}
	return true
}

// Parked returns the number of connections parked.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}

// Close stops the poller: every parked connection expires (see Park) before it returns,
// and later calls of Park report false.
func (p *Poller) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.poke()
	}
	p.mu.Unlock()
	<-p.done
	p.expireAll()
	p.closeFDs.Do(func() {
		syscall.Close(p.epfd)
		syscall.Close(p.wakeR)
		syscall.Close(p.wakeW)
	})
}

// expireAll ends every parking; the loop has ended, or is ending with p.closed set.
func (p *Poller) expireAll() {
	p.mu.Lock()
	all := make([]*parking, 0, len(p.parked))
	for _, pk := range p.parked {
		all = append(all, pk)
	}
	clear(p.parked)
	p.mu.Unlock()
	for _, pk := range all {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, pk.fd, nil)
		pk.expire()
	}
}

// poke interrupts the loop's wait; p.mu is held.
func (p *Poller) poke() {
	syscall.Write(p.wakeW, []byte{0}) // a full pipe already wakes it
}

// loop waits for parked connections' input and deadlines until Close.
func (p *Poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	var drain [64]byte
	for {
		n, err := syscall.EpollWait(p.epfd, events, p.waitMillis())
		if err != nil && !errors.Is(err, syscall.EINTR) {
			// Not expected of a valid epoll instance; parked connections would never be
			// resumed, so they all end now, as on Close.
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.expireAll()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == pipeID {
				for {
					if m, _ := syscall.Read(p.wakeR, drain[:]); m <= 0 {
						break
					}
				}
				continue
			}
			p.mu.Lock()
			pk := p.parked[id]
			delete(p.parked, id)
			p.mu.Unlock()
			if pk == nil {
				continue
			}
			syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, pk.fd, nil)
			go pk.ready()
		}
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		p.expireDue(time.Now())
	}
}

// waitMillis is how long the loop may wait for events: until the earliest deadline, or
// for ever when nothing is parked.
func (p *Poller) waitMillis() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next.IsZero() {
		return -1
	}
	d := time.Until(p.next)
	if d <= 0 {
		return 0
	}
	return int(min(d.Milliseconds()+1, math.MaxInt32))
}

// expireDue ends the parkings whose deadline is before now and sets the next deadline.
func (p *Poller) expireDue(now time.Time) {
	p.mu.Lock()
	if p.next.IsZero() || now.Before(p.next) {
		p.mu.Unlock()
		return
	}
	var due []*parking
	p.next = time.Time{}
	for id, pk := range p.parked {
		if !pk.deadline.After(now) {
			due = append(due, pk)
			delete(p.parked, id)
		} else if p.next.IsZero() || pk.deadline.Before(p.next) {
			p.next = pk.deadline
		}
	}
	p.mu.Unlock()
	for _, pk := range due {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, pk.fd, nil)
		pk.expire()
	}
}
