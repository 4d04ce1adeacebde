package rawsock

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Poller holds idle connections without a goroutine each: a parked connection is watched
// by one epoll instance shared by all of them (one-shot: each parking reports once), and
// given back to its owner on a new goroutine when input arrives or the peer hangs up.
// The poller's goroutine waits for its epoll instance in the netpoller, as for a
// socket: it holds no thread or processor while it waits (a blocking epoll_wait would
// hold a processor until the runtime's monitor took it back, stalling the proxy's other
// goroutines meanwhile).
//
// A parked connection keeps only its socket: Park closes the Conn, its descriptor
// duplicated first, so that neither its net.TCPConn (addresses, netpoller record) nor
// the Conn stays while it waits, and Ready gives the owner a new Conn over the same
// socket (its options kept, except keepalive: package net's default again). Each
// parking ends in exactly one call of either Ready or Expire of its Parked.
type Poller struct {
	// ep is the epoll instance (epfd), waited on through rc; its read deadline is the
	// earliest parking's, or in the past once the Poller is closed.
	ep      *os.File
	epfd    int
	rc      syscall.RawConn
	done    chan struct{}
	closeEp sync.Once

	// epoch is the origin of the parkings' deadlines.
	epoch time.Time

	mu     sync.Mutex
	closed bool
	// byFD are the parkings, indexed by socket descriptor (a small number, reused once
	// closed); gen numbers them, so that a report for an earlier parking of a reused
	// descriptor is told apart. parked counts them.
	byFD   []parking
	gen    uint32
	parked int
	// next is the earliest deadline of the parked connections (0: none).
	next int64
	// burst counts the parkings since the poller last reported a settled burst (see
	// afterBurst); lastPark is the latest one's time since the epoch.
	burst    int
	lastPark int64
	// afterBurst is called once a burst has settled (nil: not reported).
	afterBurst func()
}

// Parked is the owner of a parked connection, told how the parking ends.
type Parked interface {
	// Ready runs on a new goroutine once input arrives or the peer closes or resets the
	// connection, with a new Conn over its socket: the owner's from then on.
	Ready(c *Conn)
	// Expire runs, the socket closed, when the parking's deadline passes first or the
	// Poller is closed (on the poller's goroutine, or Close's: it must not block), or
	// when the socket could not be made a connection again (on Ready's goroutine).
	Expire()
}

// parking is one parked connection (kept small: there may be many); owner is nil for
// a descriptor not parked.
type parking struct {
	gen uint32
	// deadline is in nanoseconds since the poller's epoch.
	deadline int64
	owner    Parked
}

// expiryTick is the granularity of parking deadlines, in nanoseconds: a parked
// connection expires up to this much after its deadline.
const expiryTick = int64(100 * time.Millisecond)

// burstParkings is how many parkings make a burst: once that many connections have
// parked and none for burstSettle, the goroutines that served them have ended, and the
// memory they held (their stacks, the buffers of their requests) is free but still the
// runtime's. The poller then reports the burst (NewPoller's afterBurst), so that the
// process may give that memory back to the system; what to do, and how often, is the
// caller's policy (the proxy's is in proxy/internal/memreturn).
const (
	burstParkings = 256
	burstSettle   = time.Second
)

// reportSettledBurst calls afterBurst, on a goroutine of its own, once a burst of
// parkings has settled (see burstParkings); now is in nanoseconds since the epoch.
func (p *Poller) reportSettledBurst(now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.afterBurst == nil || p.burst < burstParkings || now < p.lastPark+int64(burstSettle) {
		return
	}
	p.burst = 0
	go p.afterBurst()
}

// NewPoller starts a Poller; Close stops it. afterBurst, when not nil, is called (on a
// goroutine of its own) each time a burst of connections has parked and settled: the
// memory that served them is then free.
func NewPoller(afterBurst func()) (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating the idle connections' epoll instance: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("making the idle connections' epoll instance non-blocking: %w", err)
	}
	// A non-blocking descriptor is registered with the netpoller, which then tells when
	// the epoll instance has events, as for any other file.
	ep := os.NewFile(uintptr(epfd), "idle-connections-epoll")
	rc, err := ep.SyscallConn()
	if err == nil {
		err = ep.SetReadDeadline(time.Time{}) // fails unless the netpoller watches it
	}
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("watching the idle connections' epoll instance: %w", err)
	}
	p := &Poller{ep: ep, epfd: epfd, rc: rc, done: make(chan struct{}), epoch: time.Now(), afterBurst: afterBurst}
	go p.loop()
	return p, nil
}

// Park hands c's socket, waiting for input with nothing unread, to the poller until
// owner's Ready or Expire runs (see Parked), and closes c. Park reports false, and calls
// neither, when the Poller is closed or the socket cannot be kept or watched; the caller
// then keeps c as it was.
func (p *Poller) Park(c *Conn, deadline time.Time, owner Parked) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.gen++; p.gen == 0 {
		p.gen = 1
	}
	// Deadlines are rounded up to a tick, so that however many connections park, their
	// expiry (a scan of all parkings) runs at most once a tick.
	due := max(int64(deadline.Sub(p.epoch)), 1)
	due = (due + expiryTick - 1) / expiryTick * expiryTick
	pk := parking{gen: p.gen, deadline: due, owner: owner}
	fd := -1
	var ctlErr error
	err := c.rc.Control(func(sysfd uintptr) {
		// The duplicate keeps the socket open once c is closed.
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, sysfd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			ctlErr = errno
			return
		}
		fd = int(r)
		// Level-triggered and one-shot: input already there when it is added is
		// reported at once, and nothing more after the first report.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd), Pad: int32(pk.gen)}
		if ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); ctlErr != nil {
			syscall.Close(fd)
		}
	})
	if err != nil || ctlErr != nil {
		return false
	}
	c.Close()
	if fd >= len(p.byFD) {
		p.byFD = append(p.byFD, make([]parking, max(fd+1-len(p.byFD), len(p.byFD)))...)
	}
	p.byFD[fd] = pk
	p.parked++
	p.burst++
	p.lastPark = int64(time.Since(p.epoch))
	// The loop's wait ends at the earliest deadline, and once a burst settles.
	earlier := p.next == 0 || pk.deadline < p.next
	if earlier {
		p.next = pk.deadline
	}
	if earlier || (p.afterBurst != nil && p.burst == burstParkings) {
		p.ep.SetReadDeadline(p.epoch.Add(time.Duration(p.wakeAt())))
	}
	return true
}

// Parked returns the number of connections parked.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parked
}

// Close stops the poller: every parked connection expires (see Park) before it returns,
// and later calls of Park report false.
func (p *Poller) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.ep.SetReadDeadline(time.Unix(1, 0)) // ends the loop's wait
	}
	p.mu.Unlock()
	<-p.done
	p.expireAll()
	p.closeEp.Do(func() { p.ep.Close() })
}

// expireAll ends every parking; the loop has ended, or is ending with p.closed set.
func (p *Poller) expireAll() {
	p.expireDue(math.MaxInt64)
}

// loop waits for parked connections' input and deadlines until Close.
func (p *Poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	var n int
	var waitErr error
	// wait takes the events there are without blocking; with none, the netpoller waits
	// for more (or for the deadline).
	wait := func(fd uintptr) bool {
		n, waitErr = syscall.EpollWait(int(fd), events, 0)
		if waitErr == syscall.EINTR {
			n, waitErr = 0, nil
		}
		return n > 0 || waitErr != nil
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		var deadline time.Time
		if wake := p.wakeAt(); wake != 0 {
			deadline = p.epoch.Add(time.Duration(wake))
		}
		p.ep.SetReadDeadline(deadline)
		p.mu.Unlock()
		n, waitErr = 0, nil
		err := p.rc.Read(wait)
		if err == nil {
			err = waitErr
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Not expected of a valid epoll instance; parked connections would never be
			// resumed, so they all end now, as on Close.
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.expireAll()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			p.mu.Lock()
			var pk parking
			if fd >= 0 && fd < len(p.byFD) && p.byFD[fd].owner != nil && p.byFD[fd].gen == uint32(ev.Pad) {
				pk = p.byFD[fd]
				p.byFD[fd] = parking{}
				p.parked--
			}
			p.mu.Unlock()
			if pk.owner == nil {
				continue
			}
			syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
			go resume(fd, pk.owner)
		}
		now := int64(time.Since(p.epoch))
		p.expireDue(now)
		p.reportSettledBurst(now)
	}
}

// wakeAt is when the loop's wait must end (nanoseconds since the epoch, 0: never): the
// earliest parking's deadline, or the end of a burst's settling. p.mu is held.
func (p *Poller) wakeAt() int64 {
	wake := p.next
	if p.afterBurst != nil && p.burst >= burstParkings {
		settled := p.lastPark + int64(burstSettle)
		if wake == 0 || settled < wake {
			wake = settled
		}
	}
	return wake
}

// expireDue ends the parkings whose deadline is at or before now (nanoseconds since the
// epoch) and sets the next deadline.
func (p *Poller) expireDue(now int64) {
	p.mu.Lock()
	if p.next == 0 || now < p.next {
		p.mu.Unlock()
		return
	}
	type due struct {
		fd    int
		owner Parked
	}
	var ended []due
	p.next = 0
	for fd := range p.byFD {
		pk := &p.byFD[fd]
		switch {
		case pk.owner == nil:
		case pk.deadline <= now:
			ended = append(ended, due{fd, pk.owner})
			*pk = parking{}
			p.parked--
		case p.next == 0 || pk.deadline < p.next:
			p.next = pk.deadline
		}
	}
	p.mu.Unlock()
	for _, e := range ended {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, e.fd, nil)
		syscall.Close(e.fd)
		e.owner.Expire()
	}
}

// resume gives the owner of a parked socket (fd, the poller's) a new Conn over it, or
// ends the parking when it cannot.
func resume(fd int, owner Parked) {
	f := os.NewFile(uintptr(fd), "parked-connection")
	nc, err := net.FileConn(f) // over a duplicate of fd
	f.Close()
	c, ok := nc.(*net.TCPConn)
	if err != nil || !ok {
		if nc != nil {
			nc.Close()
		}
		owner.Expire()
		return
	}
	rc, ok := Wrap(c).(*Conn)
	if !ok {
		c.Close()
		owner.Expire()
		return
	}
	owner.Ready(rc)
}
