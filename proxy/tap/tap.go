// Package tap is the proxy's side of Linkerd's tap: a Hub of the open tap sessions that
// the request path consults, and the io.linkerd.proxy.tap.Tap gRPC server (Server) that
// opens them for the one client identity allowed to tap.
//
// The request path pays one atomic load per request while no session is open
// (Hub.Active). While sessions are open, each request matching one gives it
// request-init, response-init and response-end events. A session's events go through a
// bounded buffer: a tap client that reads slowly loses events (counted) and never slows
// the traffic it observes.
package tap

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pbhttp "github.com/l5d-go/l5d/proto/gen/httptypes"
	pb "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
)

// DefaultBuffer is the number of events a session holds for a slow reader before it
// drops new ones.
const DefaultBuffer = 1024

// Hub is the set of open tap sessions. The zero Hub is ready; a nil *Hub has no sessions.
type Hub struct {
	// Buffer is the events each session buffers (DefaultBuffer when 0).
	Buffer int
	// Dropped, when set, counts the events dropped because a reader was too slow.
	Dropped *atomic.Uint64

	mu       sync.Mutex
	sessions atomic.Pointer[[]*session] // nil when none is open
	streams  atomic.Uint64
}

// Active reports whether any tap session is open. It is the whole cost of tap on the
// request path while none is.
func (h *Hub) Active() bool { return h != nil && h.sessions.Load() != nil }

// Sessions returns the number of open sessions.
func (h *Hub) Sessions() int {
	if s := h.sessions.Load(); s != nil {
		return len(*s)
	}
	return 0
}

// session is one Observe stream.
type session struct {
	match   matcher
	headers bool
	limit   uint32
	events  chan *pb.TapEvent
	dropped *atomic.Uint64

	mu      sync.Mutex
	claimed uint32 // requests tapped so far
	pending int    // tapped requests not ended yet
	done    chan struct{}
	closed  bool
}

func (h *Hub) open(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var next []*session
	if cur := h.sessions.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	h.sessions.Store(&next)
}

func (h *Hub) close(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.sessions.Load()
	if cur == nil {
		return
	}
	var next []*session
	for _, o := range *cur {
		if o != s {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		h.sessions.Store(nil)
		return
	}
	h.sessions.Store(&next)
}

// claim reports whether the session takes one more request (within its limit).
func (s *session) claim() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.limit > 0 && s.claimed >= s.limit) {
		return false
	}
	s.claimed++
	s.pending++
	return true
}

// ended records the end of a claimed request; the session is finished once its limit
// is reached and every claimed request has ended.
func (s *session) ended() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	if s.limit > 0 && s.claimed >= s.limit && s.pending == 0 && !s.closed {
		s.closed = true
		close(s.done)
	}
}

// send queues ev without blocking; a full buffer drops it.
func (s *session) send(ev *pb.TapEvent) {
	select {
	case s.events <- ev:
	default:
		if s.dropped != nil {
			s.dropped.Add(1)
		}
	}
}

// Tapped is one request observed by the sessions that matched it. Its methods are
// called by the request's goroutine, in order: ResponseInit (when a response starts),
// Body (as response bytes pass), End.
type Tapped struct {
	sessions  []*session
	headers   bool // some session extracts headers
	base      pb.TapEvent
	id        uint64
	start     time.Time
	respStart time.Time
	bytes     uint64
}

// Start returns the observation of the request r (whose header fields are h), or nil
// when no open session matches it. Call it only when Active.
func (h *Hub) Start(r *Request, hdr http.Header) *Tapped {
	cur := h.sessions.Load()
	if cur == nil {
		return nil
	}
	var t *Tapped
	for _, s := range *cur {
		if !s.match(r) || !s.claim() {
			continue
		}
		if t == nil {
			t = &Tapped{start: r.Start, id: h.streams.Add(1)}
			if t.start.IsZero() {
				t.start = time.Now()
			}
		}
		t.sessions = append(t.sessions, s)
		t.headers = t.headers || s.headers
	}
	if t == nil {
		return nil
	}
	dir := pb.TapEvent_OUTBOUND
	if r.Inbound {
		dir = pb.TapEvent_INBOUND
	}
	t.base = pb.TapEvent{
		Source:          netconv.TCPAddress(r.Source),
		SourceMeta:      &pb.TapEvent_EndpointMeta{Labels: r.SourceLabels},
		Destination:     netconv.TCPAddress(r.Destination),
		DestinationMeta: &pb.TapEvent_EndpointMeta{Labels: r.DestinationLabels},
		ProxyDirection:  dir,
	}
	t.emit(func(withHeaders bool) *pb.TapEvent_Http {
		init := &pb.TapEvent_Http_RequestInit{
			Id:        t.streamID(),
			Method:    method(r.Method),
			Scheme:    scheme(r.Scheme),
			Authority: r.Authority,
			Path:      r.Path,
		}
		if withHeaders {
			init.Headers = headers(hdr)
		}
		return &pb.TapEvent_Http{Event: &pb.TapEvent_Http_RequestInit_{RequestInit: init}}
	})
	return t
}

func (t *Tapped) streamID() *pb.TapEvent_Http_StreamId {
	return &pb.TapEvent_Http_StreamId{Stream: t.id}
}

// emit sends the event made by build to every session, with header fields to those
// extracting them.
func (t *Tapped) emit(build func(withHeaders bool) *pb.TapEvent_Http) {
	var plain, full *pb.TapEvent
	for _, s := range t.sessions {
		ev := &plain
		if s.headers {
			ev = &full
		}
		if *ev == nil {
			*ev = &pb.TapEvent{Source: t.base.Source, SourceMeta: t.base.SourceMeta,
				Destination: t.base.Destination, DestinationMeta: t.base.DestinationMeta,
				ProxyDirection: t.base.ProxyDirection,
				Event:          &pb.TapEvent_Http_{Http: build(s.headers)}}
		}
		s.send(*ev)
	}
}

// ResponseInit records the start of the response: its status and header fields.
func (t *Tapped) ResponseInit(status int, hdr http.Header) {
	t.respStart = time.Now()
	t.emit(func(withHeaders bool) *pb.TapEvent_Http {
		init := &pb.TapEvent_Http_ResponseInit{
			Id:               t.streamID(),
			SinceRequestInit: durationpb.New(t.respStart.Sub(t.start)),
			HttpStatus:       uint32(status),
		}
		if withHeaders {
			init.Headers = headers(hdr)
		}
		return &pb.TapEvent_Http{Event: &pb.TapEvent_Http_ResponseInit_{ResponseInit: init}}
	})
}

// Body counts n bytes of response body.
func (t *Tapped) Body(n int) { t.bytes += uint64(n) }

// End records the end of the response (or of the request without one): its gRPC status
// when trailers carry grpc-status, the trailers, or a reset when aborted.
func (t *Tapped) End(trailers http.Header, aborted bool) {
	now := time.Now()
	if t.respStart.IsZero() {
		t.respStart = now
	}
	var eos *pb.Eos
	switch {
	case aborted:
		eos = &pb.Eos{End: &pb.Eos_ResetErrorCode{ResetErrorCode: 2}} // INTERNAL_ERROR
	case len(trailers["Grpc-Status"]) > 0:
		if code, err := strconv.ParseUint(trailers["Grpc-Status"][0], 10, 32); err == nil {
			eos = &pb.Eos{End: &pb.Eos_GrpcStatusCode{GrpcStatusCode: uint32(code)}}
		}
	}
	t.emit(func(withHeaders bool) *pb.TapEvent_Http {
		end := &pb.TapEvent_Http_ResponseEnd{
			Id:                t.streamID(),
			SinceRequestInit:  durationpb.New(now.Sub(t.start)),
			SinceResponseInit: durationpb.New(now.Sub(t.respStart)),
			ResponseBytes:     t.bytes,
			Eos:               eos,
		}
		if withHeaders && len(trailers) > 0 {
			end.Trailers = headers(trailers)
		}
		return &pb.TapEvent_Http{Event: &pb.TapEvent_Http_ResponseEnd_{ResponseEnd: end}}
	})
	for _, s := range t.sessions {
		s.ended()
	}
}

func method(m string) *pbhttp.HttpMethod {
	if v, ok := pbhttp.HttpMethod_Registered_value[m]; ok {
		return &pbhttp.HttpMethod{Type: &pbhttp.HttpMethod_Registered_{Registered: pbhttp.HttpMethod_Registered(v)}}
	}
	return &pbhttp.HttpMethod{Type: &pbhttp.HttpMethod_Unregistered{Unregistered: m}}
}

func methodName(m *pbhttp.HttpMethod) string {
	if u, ok := m.GetType().(*pbhttp.HttpMethod_Unregistered); ok {
		return u.Unregistered
	}
	return m.GetRegistered().String()
}

func scheme(s string) *pbhttp.Scheme {
	switch s {
	case "http":
		return &pbhttp.Scheme{Type: &pbhttp.Scheme_Registered_{Registered: pbhttp.Scheme_HTTP}}
	case "https":
		return &pbhttp.Scheme{Type: &pbhttp.Scheme_Registered_{Registered: pbhttp.Scheme_HTTPS}}
	}
	return &pbhttp.Scheme{Type: &pbhttp.Scheme_Unregistered{Unregistered: s}}
}

func schemeName(s *pbhttp.Scheme) string {
	if u, ok := s.GetType().(*pbhttp.Scheme_Unregistered); ok {
		return u.Unregistered
	}
	return s.GetRegistered().String()
}

func headers(h http.Header) *pbhttp.Headers {
	out := &pbhttp.Headers{}
	for k, vv := range h {
		for _, v := range vv {
			out.Headers = append(out.Headers, &pbhttp.Headers_Header{Name: k, Value: []byte(v)})
		}
	}
	return out
}
