package discovery

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
)

// profile is one original destination address's GetProfile stream.
type profile struct {
	watch
	dst    netip.AddrPort
	latest atomic.Pointer[profileState]

	// Owned by the stream goroutine: the identity registered for a pod endpoint.
	epAddr netip.AddrPort
	epID   string
}

// profileState is what the latest profile says about an address.
type profileState struct {
	// name is the service authority "fqdn:port" the address belongs to, or "".
	name string
	// endpoint is the backend of a known pod address when name is empty.
	endpoint *forward.Backend
	opaque   bool
}

func newProfile(r *Resolver, dst netip.AddrPort) *profile {
	p := &profile{dst: dst}
	p.init(r)
	return p
}

func (p *profile) wait(ctx context.Context, timeout time.Duration) *profileState {
	p.waitReady(ctx, timeout)
	if p.state.Load() != stateKnown {
		return nil
	}
	return p.latest.Load()
}

func (p *profile) run() {
	defer func() { p.r.dropID(p.epAddr, p.epID) }()
	p.loop(p.dst.String(), p.stream)
}

func (p *profile) stream() (bool, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	s, err := p.r.opts.Client.GetProfile(ctx, &destination.GetDestination{
		Scheme: "k8s", Path: p.dst.String(), ContextToken: p.r.opts.ContextToken})
	if err != nil {
		return false, fmt.Errorf("opening Destination.GetProfile for %s: %w", p.dst, err)
	}
	got := false
	for {
		dp, err := s.Recv()
		if err != nil {
			return got, fmt.Errorf("Destination.GetProfile for %s: %w", p.dst, err)
		}
		if !got {
			p.connected(p.dst.String())
		}
		got = true
		p.apply(dp)
	}
}

func (p *profile) apply(dp *destination.DestinationProfile) {
	st := &profileState{opaque: dp.GetOpaqueProtocol()}
	if fqn := strings.TrimSuffix(dp.GetFullyQualifiedName(), "."); fqn != "" {
		st.name = strings.ToLower(fqn) + ":" + strconv.Itoa(int(p.dst.Port()))
	}
	var epAddr netip.AddrPort
	var epID string
	var epTransport uint16
	if wa := dp.GetEndpoint(); st.name == "" && wa != nil {
		if addr, ok := tcpAddr(wa.GetAddr()); ok {
			e := p.r.endpointFor("", addr, nil, wa)
			bal := balance.New[*forward.Endpoint](p.r.opts.Balancer)
			bal.Set([]*balance.Endpoint[*forward.Endpoint]{e.bep})
			st.endpoint = &forward.Backend{Name: addr.String(), Balancer: bal}
			epAddr, epID, epTransport = addr, e.id, e.transport
		}
	}
	p.r.addID(epAddr, epID, epTransport)
	p.r.dropID(p.epAddr, p.epID)
	p.epAddr, p.epID = epAddr, epID
	p.latest.Store(st)
	if st.name == "" && st.endpoint == nil {
		p.setState(stateUnknown)
		return
	}
	p.setState(stateKnown)
}
