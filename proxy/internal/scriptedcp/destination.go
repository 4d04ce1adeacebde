// Package scriptedcp is a real gRPC control plane for the proxy's tests: a Destination
// service whose endpoint sets, profiles and answer delays the test scripts, and an Identity service that
// signs CSRs with a test authority. The servers listen on loopback and can be stopped and
// restarted on the same address to simulate a control-plane outage.
package scriptedcp

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/proto/gen/destination"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/netconv"
)

// Endpoint is one scripted address.
type Endpoint struct {
	Addr     netip.AddrPort
	Identity string
	H2       bool
	Labels   map[string]string
	// OpaqueTransport is the inbound port of the opaque transport hint (0: none).
	OpaqueTransport uint16
	// AuthorityOverride is the authority_override ("name:port") of a multicluster
	// gateway endpoint ("": none).
	AuthorityOverride string
}

// Destination serves Destination.Get and GetProfile from scripted state. Names without a
// scripted set answer NoEndpoints{exists: false}; addresses without a scripted profile get
// an empty profile.
type Destination struct {
	destination.UnimplementedDestinationServer

	mu       sync.Mutex
	sets     map[string][]Endpoint
	profiles map[string]*destination.DestinationProfile
	refused  map[string]codes.Code
	changed  chan struct{}
	gets     map[string]int
	profs    map[string]int
	// hold, while non-nil, keeps new streams from answering until it is closed.
	hold chan struct{}
	held atomic.Int32

	srv  *grpc.Server
	addr string
	tls  *tls.Config
}

// NewDestination returns a service with no scripted state; Start serves it.
func NewDestination() *Destination {
	return &Destination{sets: map[string][]Endpoint{}, profiles: map[string]*destination.DestinationProfile{}, refused: map[string]codes.Code{},
		changed: make(chan struct{}), gets: map[string]int{}, profs: map[string]int{}}
}

// Set scripts the endpoint set of path ("name:port"), pushed to open streams as diffs.
func (d *Destination) Set(path string, eps ...Endpoint) {
	d.mu.Lock()
	d.sets[path] = eps
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// SetProfile scripts the profile of path ("ip:port" or "name:port").
func (d *Destination) SetProfile(path string, p *destination.DestinationProfile) {
	d.mu.Lock()
	d.profiles[path] = p
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// Hold makes every stream opened from now on wait before its first answer until Release:
// a control plane that is slow to answer.
func (d *Destination) Hold() {
	d.mu.Lock()
	if d.hold == nil {
		d.hold = make(chan struct{})
	}
	d.mu.Unlock()
}

// Release lets held streams, and later ones, answer.
func (d *Destination) Release() {
	d.mu.Lock()
	if d.hold != nil {
		close(d.hold)
		d.hold = nil
	}
	d.mu.Unlock()
}

// Held returns how many streams (Get and GetProfile) are waiting to answer.
func (d *Destination) Held() int { return int(d.held.Load()) }

// waitHold waits while answers are held; it reports false when the stream ended first.
func (d *Destination) waitHold(ctx context.Context) bool {
	d.mu.Lock()
	h := d.hold
	d.mu.Unlock()
	if h == nil {
		return true
	}
	d.held.Add(1)
	defer d.held.Add(-1)
	select {
	case <-h:
		return true
	case <-ctx.Done():
		return false
	}
}

// Streams returns how many Get streams for path are open.
func (d *Destination) Streams(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gets[path]
}

// ProfileStreams returns how many GetProfile streams for path are open.
func (d *Destination) ProfileStreams(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.profs[path]
}

// Start serves on addr ("127.0.0.1:0" for a new port), with TLS when cfg is non-nil, and
// returns the bound address. Start after Stop serves again on the same address.
func (d *Destination) Start(addr string, cfg *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("scripted destination: %w", err)
	}
	var opts []grpc.ServerOption
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	destination.RegisterDestinationServer(srv, d)
	d.mu.Lock()
	d.srv, d.addr, d.tls = srv, ln.Addr().String(), cfg
	d.mu.Unlock()
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Stop kills the server and its streams at once.
func (d *Destination) Stop() {
	d.mu.Lock()
	srv := d.srv
	d.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Refuse makes Get and GetProfile for path fail with code, as Linkerd's destination does
// for what is not a Service (InvalidArgument, NotFound).
func (d *Destination) Refuse(path string, code codes.Code) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refused[path] = code
}

// refusal returns the status Get and GetProfile answer path with, nil when none.
func (d *Destination) refusal(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.refused[path]; ok {
		return status.Errorf(c, "scripted refusal of %s", path)
	}
	return nil
}

// Get implements the Destination service.
func (d *Destination) Get(req *destination.GetDestination, s grpc.ServerStreamingServer[destination.Update]) error {
	path := req.GetPath()
	d.mu.Lock()
	d.gets[path]++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.gets[path]--
		d.mu.Unlock()
	}()
	if !d.waitHold(s.Context()) {
		return nil
	}
	if err := d.refusal(path); err != nil {
		return err
	}
	var sent map[netip.AddrPort]Endpoint
	for {
		d.mu.Lock()
		eps, ok := d.sets[path]
		changed := d.changed
		d.mu.Unlock()
		if !ok {
			if sent == nil {
				if err := s.Send(&destination.Update{Update: &destination.Update_NoEndpoints{
					NoEndpoints: &destination.NoEndpoints{Exists: false}}}); err != nil {
					return err
				}
				sent = map[netip.AddrPort]Endpoint{}
			}
		} else if err := sendDiff(s, &sent, eps); err != nil {
			return err
		}
		select {
		case <-s.Context().Done():
			return nil
		case <-changed:
		}
	}
}

func sendDiff(s grpc.ServerStreamingServer[destination.Update], sent *map[netip.AddrPort]Endpoint, eps []Endpoint) error {
	first := *sent == nil
	next := map[netip.AddrPort]Endpoint{}
	var add []*destination.WeightedAddr
	for _, e := range eps {
		next[e.Addr] = e
		if old, ok := (*sent)[e.Addr]; ok && old.Identity == e.Identity && old.H2 == e.H2 && old.OpaqueTransport == e.OpaqueTransport && old.AuthorityOverride == e.AuthorityOverride && maps.Equal(old.Labels, e.Labels) {
			continue
		}
		add = append(add, weightedAddr(e))
	}
	var remove []*pbnet.TcpAddress
	for a := range *sent {
		if _, ok := next[a]; !ok {
			remove = append(remove, TCPAddr(a))
		}
	}
	*sent = next
	if first && len(eps) == 0 {
		return s.Send(&destination.Update{Update: &destination.Update_NoEndpoints{
			NoEndpoints: &destination.NoEndpoints{Exists: true}}})
	}
	if len(add) > 0 {
		if err := s.Send(&destination.Update{Update: &destination.Update_Add{Add: &destination.WeightedAddrSet{
			Addrs: add, MetricLabels: map[string]string{"service": "scripted"}}}}); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		return s.Send(&destination.Update{Update: &destination.Update_Remove{Remove: &destination.AddrSet{Addrs: remove}}})
	}
	return nil
}

func weightedAddr(e Endpoint) *destination.WeightedAddr {
	wa := &destination.WeightedAddr{Addr: TCPAddr(e.Addr), Weight: 10000, MetricLabels: e.Labels}
	if e.Identity != "" {
		wa.TlsIdentity = &destination.TlsIdentity{Strategy: &destination.TlsIdentity_DnsLikeIdentity_{
			DnsLikeIdentity: &destination.TlsIdentity_DnsLikeIdentity{Name: e.Identity}}}
	}
	if e.H2 {
		wa.ProtocolHint = &destination.ProtocolHint{Protocol: &destination.ProtocolHint_H2_{H2: &destination.ProtocolHint_H2{}}}
	}
	if e.OpaqueTransport != 0 {
		if wa.ProtocolHint == nil {
			wa.ProtocolHint = &destination.ProtocolHint{}
		}
		wa.ProtocolHint.OpaqueTransport = &destination.ProtocolHint_OpaqueTransport{InboundPort: uint32(e.OpaqueTransport)}
	}
	if e.AuthorityOverride != "" {
		wa.AuthorityOverride = &destination.AuthorityOverride{AuthorityOverride: e.AuthorityOverride}
	}
	return wa
}

// WeightedAddr renders a scripted endpoint as the protobuf message.
func WeightedAddr(e Endpoint) *destination.WeightedAddr { return weightedAddr(e) }

// TCPAddr converts an address to its protobuf form.
func TCPAddr(a netip.AddrPort) *pbnet.TcpAddress { return netconv.TCPAddress(a) }

// GetProfile implements the Destination service.
func (d *Destination) GetProfile(req *destination.GetDestination, s grpc.ServerStreamingServer[destination.DestinationProfile]) error {
	path := req.GetPath()
	d.mu.Lock()
	d.profs[path]++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.profs[path]--
		d.mu.Unlock()
	}()
	if !d.waitHold(s.Context()) {
		return nil
	}
	if err := d.refusal(path); err != nil {
		return err
	}
	var last *destination.DestinationProfile
	first := true
	for {
		d.mu.Lock()
		p := d.profiles[path]
		changed := d.changed
		d.mu.Unlock()
		if p == nil {
			p = &destination.DestinationProfile{}
		}
		if first || p != last {
			if err := s.Send(p); err != nil {
				return err
			}
		}
		first, last = false, p
		select {
		case <-s.Context().Done():
			return nil
		case <-changed:
		}
	}
}
