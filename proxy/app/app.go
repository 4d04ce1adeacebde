// Package app assembles a running proxy from its configuration: the admin server, the
// inbound and outbound listeners with their routers, and the shared metrics registry.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proxy/accept"
	"github.com/l5d-go/l5d/proxy/accesslog"
	"github.com/l5d-go/l5d/proxy/admin"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/discovery"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/gateway"
	"github.com/l5d-go/l5d/proxy/inbound"
	"github.com/l5d-go/l5d/proxy/inpolicy"
	"github.com/l5d-go/l5d/proxy/internal/memreturn"
	"github.com/l5d-go/l5d/proxy/logstream"
	"github.com/l5d-go/l5d/proxy/meshtls"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/outbound"
	"github.com/l5d-go/l5d/proxy/outpolicy"
	"github.com/l5d-go/l5d/proxy/tap"
)

// TLS labels of traffic that is not mesh TLS: outbound to a destination discovery gave no
// identity, inbound from a client without mesh TLS, and the application's own
// connections to the outbound proxy, which never leave the pod (as Linkerd's proxy
// labels them).
var (
	outboundTLSLabels = metrics.Labels("tls", "no_identity", "no_tls_reason", "not_provided_by_service_discovery")
	inboundTLSLabels  = metrics.Labels("tls", "no_identity", "no_tls_reason", "no_tls_from_remote")
	loopbackTLSLabels = metrics.Labels("tls", "no_identity", "no_tls_reason", "loopback")
)

// Options are the parts of a proxy that do not come from the environment.
type Options struct {
	// OrigDst reads SO_ORIGINAL_DST; nil means every connection uses the configured
	// fallback destinations.
	OrigDst accept.OrigDstFunc
	// Discovery resolves outbound targets. When nil, the proxy uses the Destination
	// service named by LINKERD2_PROXY_DESTINATION_SVC_ADDR, or, without one, forwards
	// everything to original destinations.
	Discovery outbound.Discovery
	// Level is the proxy's adjustable log level.
	Level *slog.LevelVar
	// Pprof mounts /debug/pprof/ on the admin server.
	Pprof bool
	// Logs, when set, streams the log (whose handler it wraps) on GET /logs.json.
	Logs *logstream.Hub
	// Version is the version label of proxy_build_info (the binary's module version
	// when empty).
	Version string
	// AccessLog receives the HTTP access log when LINKERD2_PROXY_ACCESS_LOG enables it;
	// os.Stderr when nil.
	AccessLog io.Writer
	Log       *slog.Logger
}

// Proxy is a running proxy.
type Proxy struct {
	// Metrics is the registry exposed on /metrics.
	Metrics *metrics.Registry
	// Admin is the admin handler (readiness).
	Admin *admin.Admin

	inboundLn, outboundLn, adminLn net.Listener
	cancel                         context.CancelFunc
	done                           chan struct{}
	err                            error

	// tapLn is the tap (control) listener, nil when tap is disabled.
	tapLn net.Listener
}

// Start binds the listeners named in cfg and serves until ctx ends or Shutdown is called
// (also through POST /shutdown when enabled). Binding errors are returned at once.
func Start(ctx context.Context, cfg *config.Config, opts Options) (*Proxy, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Proxy{Metrics: metrics.New(), cancel: cancel, done: make(chan struct{})}
	p.Metrics.BuildInfo(opts.Version)
	ctl, err := startControl(cfg, p.Metrics, opts.Log)
	if err != nil {
		cancel()
		return nil, err
	}
	if len(cfg.GatewaySuffixes) > 0 && ctl.id == nil {
		ctl.close()
		cancel()
		return nil, fmt.Errorf("%s needs a mesh identity: a gateway only serves mesh TLS clients, and identity is disabled", config.EnvInboundGatewaySuffixes)
	}
	listen := func(name string, a netip.AddrPort) net.Listener {
		if err != nil {
			return nil
		}
		var ln net.Listener
		ln, err = net.Listen("tcp", a.String())
		if err != nil {
			err = fmt.Errorf("binding the %s listener on %s: %w", name, a, err)
		}
		return ln
	}
	p.adminLn = listen("admin", cfg.AdminListenAddr)
	p.inboundLn = listenAll(listen, "inbound", cfg.Inbound.ListenAddr, cfg.Inbound.MoreListenAddrs)
	p.outboundLn = listenAll(listen, "outbound", cfg.Outbound.ListenAddr, cfg.Outbound.MoreListenAddrs)
	if tapEnabled(cfg, ctl) {
		p.tapLn = listen("tap", cfg.ControlListenAddr)
	}
	if err != nil {
		for _, ln := range []net.Listener{p.adminLn, p.inboundLn, p.outboundLn, p.tapLn} {
			if ln != nil {
				ln.Close()
			}
		}
		ctl.close()
		cancel()
		return nil, err
	}

	var shutdown func()
	if cfg.ShutdownEndpoint {
		shutdown = cancel
	}
	var certificate func() [][]byte
	if ctl.id != nil {
		certificate = func() [][]byte {
			if c := ctl.id.Certificate(); c != nil {
				return c.Certificate
			}
			return nil
		}
	}
	p.Admin = admin.New(admin.Options{Metrics: p.Metrics, Level: opts.Level, LogFilter: cfg.LogFilter,
		Shutdown: shutdown, Pprof: opts.Pprof, Certificate: certificate, Log: opts.Log,
		Env: func() map[string]string { return config.Environ(os.LookupEnv) }, Logs: opts.Logs})

	disc := opts.Discovery
	if disc == nil && ctl.resolver != nil {
		disc = ctl.resolver
	}
	outConnect := forward.TCPConnector(cfg.Outbound.ConnectTimeout, cfg.Outbound.ConnectKeepalive)
	inConnect := forward.TCPConnector(cfg.Inbound.ConnectTimeout, cfg.Inbound.ConnectKeepalive)
	var terminator *meshtls.Terminator
	var outConnectOpaque outbound.ConnectOpaqueFunc
	var outTag func(string) string
	if ctl.id != nil {
		// Endpoints discovery gave a TLS identity are reached over mesh TLS; opaque
		// connections to those with an opaque transport hint go through their inbound
		// port with a transport header.
		lookup := func(netip.AddrPort) string { return "" }
		if ids, ok := disc.(interface{ Identity(netip.AddrPort) string }); ok {
			lookup = ids.Identity
		}
		connector := meshtls.NewConnector(ctl.id, outConnect, lookup)
		// Shared HTTP/2 connections are pooled per identity, so a connection opened in
		// plaintext before discovery gave the address an identity is not reused after.
		outTag = func(addr string) string {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return ""
			}
			return lookup(ap)
		}
		if ot, ok := disc.(interface{ OpaqueTransport(netip.AddrPort) uint16 }); ok {
			connector.SetOpaqueTransport(ot.OpaqueTransport)
		}
		outConnect, outConnectOpaque = connector.Connect, connector.ConnectOpaqueNamed
		terminator = meshtls.NewTerminator(ctl.id)
	}
	// Destinations outside the discovery networks follow their EgressNetwork's policy.
	var egress outbound.EgressRouter
	if ctl.policies != nil {
		var names outpolicy.ResolveFunc
		if disc != nil {
			names = disc.Name
		}
		egress = ctl.policies.Egress(ctx, discovery.DefaultResolveTimeout, names)
	}
	outRouter := outbound.NewRouter(outbound.Options{
		Suffixes:  cfg.ProfileSuffixes,
		Networks:  cfg.ProfileNetworks,
		Discovery: disc,
		Metrics:   p.Metrics,
		Balancer:  balance.Options{Capacity: cfg.Outbound.QueueCapacity, Failfast: cfg.Outbound.QueueFailfast},
		TLSLabels: outboundTLSLabels,
		Connect:   outConnect,
		// Opaque connections to discovered endpoints may use the opaque transport.
		ConnectOpaque: outConnectOpaque,
		IngressMode:   cfg.IngressMode,
		Egress:        egress,
		Log:           opts.Log,
	})
	// Inbound authorization: the controller's answer per port (the configured default
	// policy everywhere without a controller). Until the controller has answered about a
	// port, its connections wait (up to the inbound detection timeout) and are refused
	// without an answer: the proxy fails closed, except in the control plane's own pods.
	watcher := inpolicy.NewWatcher(ctx, ctl.policy, cfg.PolicyWorkload,
		inpolicy.Default(cfg.InboundDefaultPolicy, cfg.ClusterNetworks), opts.Log)
	watcher.Wait = cfg.Inbound.DetectTimeout
	watcher.DefaultUntilKnown = servesControlPlane(cfg)
	inRouter := inbound.NewRouter(inbound.Options{
		Policy:      watcher.Port,
		PolicyKnown: watcher.Known,
		// Ports listed as requiring identity or TLS refuse other connections.
		RequireIdentity: cfg.RequireIdentityPorts.Has,
		RequireTLS:      cfg.RequireTLSPorts.Has,
		Metrics:         p.Metrics,
		Balancer:        balance.Options{Capacity: cfg.Inbound.QueueCapacity, Failfast: cfg.Inbound.QueueFailfast},
		TLSLabels:       inboundTLSLabels,
		Connect:         inConnect,
		Log:             opts.Log,
	})
	hub := p.tapHub()
	accessLog := startAccessLog(cfg, opts, p.Metrics)
	// The connections HTTP requests go out on are counted as Linkerd's proxy counts them
	// (peer="dst", with the server_id of mesh TLS).
	outClients := forward.NewClients(forward.ClientOptions{
		Connect: outbound.CountConnections(outConnect, p.Metrics, outboundTLSLabels), Tag: outTag})
	inClients := forward.NewClients(forward.ClientOptions{Connect: inConnect})

	// One limit for the process: both listeners' idle bursts share it.
	freeMemory := memreturn.FreeOSMemory()
	outSrv := &accept.Server{
		Direction:     "outbound",
		OrigDst:       opts.OrigDst,
		Fallback:      cfg.Outbound.FallbackDst,
		DetectTimeout: cfg.Outbound.DetectTimeout,
		Opaque:        outboundOpaque(cfg, ctl, opts.Discovery),
		Hold:          outboundHold(cfg, ctl, opts.Discovery),
		HTTP: &forward.Handler{Router: outRouter, Clients: outClients, Log: opts.Log, Tap: hub, Trace: ctl.tracer("outbound"),
			ErrorMetrics: p.Metrics.HTTP(metrics.Join(metrics.Labels("direction", "outbound"), outboundTLSLabels)),
			ErrorHeaders: outboundErrorHeaders(cfg)},
		TCP:            outRouter.ServeTCP,
		Metrics:        p.Metrics,
		TCPLabels:      loopbackTLSLabels,
		Keepalive:      cfg.Outbound.AcceptKeepalive,
		AfterIdleBurst: freeMemory.Request,
		Log:            opts.Log,
	}
	var gw *accept.Handlers
	if len(cfg.GatewaySuffixes) > 0 {
		// Multicluster gateway: connections addressed to the proxy itself are forwarded,
		// by the outbound side, to the Service they name.
		g := gateway.New(gateway.Options{Suffixes: cfg.GatewaySuffixes, Inbound: inRouter, Outbound: outRouter, Log: opts.Log})
		// Its requests are counted inbound, once each, by the gateway's handler.
		gw = &accept.Handlers{TCP: g.ServeTCP, HTTP: g.Handler(&forward.Handler{Router: g, Clients: outClients, Log: opts.Log, Tap: hub,
			ErrorHeaders: meshedClient})}
	}
	inSrv := &accept.Server{
		Direction:     "inbound",
		OrigDst:       opts.OrigDst,
		Fallback:      cfg.Inbound.FallbackDst,
		DetectTimeout: cfg.Inbound.DetectTimeout,
		Opaque:        func(d netip.AddrPort) bool { return cfg.Inbound.OpaquePorts.Has(d.Port()) },
		HTTP: &forward.Handler{Router: inRouter, Clients: inClients, Log: opts.Log, Tap: hub, Trace: ctl.tracer("inbound"), AccessLog: accessLog.logger,
			ErrorMetrics: p.Metrics.HTTP(metrics.Join(metrics.Labels("direction", "inbound"), inboundTLSLabels)),
			ErrorHeaders: meshedClient},
		TCP:       inRouter.ServeTCP,
		Metrics:   p.Metrics,
		TCPLabels: inboundTLSLabels,
		TLS:       terminator,
		Gateway:   gw,
		OwnPort:   ownPorts(cfg, p).Has,
		Admit:     inRouter.Admit,
		// A port with HTTP routes is never reachable as opaque TCP.
		OpaqueFallback: inRouter.OpaqueFallback,
		Keepalive:      cfg.Inbound.AcceptKeepalive,
		AfterIdleBurst: freeMemory.Request,
		Log:            opts.Log,
	}

	grace := min(cfg.ShutdownGracePeriod, 30*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	ctlDone := make(chan struct{})
	go func() { defer close(ctlDone); ctl.run(ctx) }()
	wg.Add(3)
	if p.tapLn != nil {
		srv := &tap.Server{Hub: hub, Name: cfg.TapName, TLS: meshtls.ServerConfig(ctl.id),
			PeerIdentity: meshtls.PeerIdentity, Refused: p.tapRefused, Log: opts.Log}
		wg.Add(1)
		go func() { defer wg.Done(); errs[3] = srv.Serve(ctx, p.tapLn) }()
	}
	go func() { defer wg.Done(); errs[0] = outSrv.Serve(ctx, p.outboundLn, grace) }()
	go func() { defer wg.Done(); errs[1] = inSrv.Serve(ctx, p.inboundLn, grace) }()
	go func() { defer wg.Done(); errs[2] = serveAdmin(ctx, p.adminLn, p.Admin) }()
	go func() {
		wg.Wait()
		accessLog.stop() // after the servers, so the last requests are written
		<-ctlDone
		ctl.close()
		outClients.Close()
		inClients.Close()
		p.err = errors.Join(errs...)
		close(p.done)
	}()
	// Not ready until the first identity certificate is in place and the controller has
	// given the policies of the application's ports (LINKERD2_PROXY_INBOUND_PORTS).
	ports := slices.Sorted(maps.Keys(cfg.InboundPorts))
	if ctl.id == nil && (ctl.policy == nil || len(ports) == 0) {
		p.Admin.SetReady(true)
	} else {
		go p.becomeReady(ctx, ctl, watcher, ports)
	}
	opts.Log.Info("proxy started", "outbound", p.outboundLn.Addr().String(),
		"inbound", p.inboundLn.Addr().String(), "admin", p.adminLn.Addr().String())
	return p, nil
}

// servesControlPlane reports whether the proxy fronts a control-plane component the mesh
// bootstraps through: its identity is that of the identity, destination or policy
// controller. Such a proxy cannot wait for inbound policies before serving (nor before
// being ready): every proxy, the policy controller's included, needs the identity
// controller to be reachable to get a certificate, and the policy controller's pods are
// only found once ready. Linkerd's proxy met the same cycle when it made connections wait
// for policies (linkerd/linkerd2-proxy#2267). Its ports use the default policy until the
// controller answers.
func servesControlPlane(cfg *config.Config) bool {
	id := cfg.IdentityLocalName
	return identityEnabled(cfg) && id != "" && (id == cfg.IdentityName || id == cfg.DestinationName || id == cfg.PolicyName)
}

// becomeReady marks the proxy ready once it has its identity certificate (with identity
// enabled) and the controller's policies of ports, unless ctx ends first.
func (p *Proxy) becomeReady(ctx context.Context, ctl *control, watcher *inpolicy.Watcher, ports []uint16) {
	if ctl.id != nil {
		select {
		case <-ctl.id.Ready():
		case <-ctx.Done():
			return
		}
	}
	if watcher.WaitKnown(ctx, ports) == nil {
		p.Admin.SetReady(true)
	}
}

// ownPorts returns the ports of the proxy's listeners: the inbound, outbound and admin
// and tap ports it bound (the configured ones, or those the system chose for port 0) and
// the configured control (tap) port. Inbound connections are never delivered to them.
func ownPorts(cfg *config.Config, p *Proxy) config.PortSet {
	set := config.PortSet{}
	add := func(a netip.AddrPort) {
		if a.Port() != 0 {
			set[a.Port()] = struct{}{}
		}
	}
	in, out, admin := p.Addrs()
	for _, a := range []netip.AddrPort{in, out, admin, p.TapAddr(), cfg.ControlListenAddr, cfg.AdminListenAddr,
		cfg.Inbound.ListenAddr, cfg.Outbound.ListenAddr} {
		add(a)
	}
	for _, a := range append(slices.Clone(cfg.Inbound.MoreListenAddrs), cfg.Outbound.MoreListenAddrs...) {
		add(a)
	}
	return set
}

// outboundOpaque reports whether an outbound destination skips protocol detection: its
// port is configured opaque, or its profile (for addresses in the profile networks)
// says so.
func outboundOpaque(cfg *config.Config, ctl *control, custom outbound.Discovery) func(netip.AddrPort) bool {
	ports := cfg.Outbound.OpaquePorts
	if ctl.resolver == nil || custom != nil {
		return func(d netip.AddrPort) bool { return ports.Has(d.Port()) }
	}
	r, nets := ctl.resolver, cfg.ProfileNetworks
	return func(d netip.AddrPort) bool {
		if ports.Has(d.Port()) {
			return true
		}
		a := d.Addr().Unmap()
		for _, n := range nets {
			if n.Contains(a) {
				return r.Opaque(context.Background(), d)
			}
		}
		return false
	}
}

// outboundHold keeps the discovery answer of an outbound connection's original
// destination (in the profile networks) cached while the connection is open, so a new
// connection to a target in use finds it even while the control plane is unreachable.
func outboundHold(cfg *config.Config, ctl *control, custom outbound.Discovery) func(netip.AddrPort) func() {
	if ctl.resolver == nil || custom != nil {
		return nil
	}
	r, nets := ctl.resolver, cfg.ProfileNetworks
	return func(d netip.AddrPort) func() {
		a := d.Addr().Unmap()
		for _, n := range nets {
			if n.Contains(a) {
				return r.Hold(d)
			}
		}
		return nil
	}
}

func serveAdmin(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-done
	return nil
}

// tapEnabled reports whether the proxy serves tap: it has a mesh identity to serve it
// over and LINKERD2_PROXY_TAP_SVC_NAME names the one client allowed.
func tapEnabled(cfg *config.Config, ctl *control) bool {
	return ctl.id != nil && cfg.TapName != ""
}

// tapHub returns the tap sessions of the proxy's handlers, with their metrics, or nil
// when tap is disabled.
func (p *Proxy) tapHub() *tap.Hub {
	if p.tapLn == nil {
		return nil
	}
	hub := &tap.Hub{Dropped: p.Metrics.Counter("tap_event_dropped_total",
		"Tap events dropped because a tap client read too slowly.", "")}
	p.Metrics.Func("tap_sessions", "gauge", "Open tap sessions.", "", func() float64 { return float64(hub.Sessions()) })
	return hub
}

// tapRefused is the counter of tap clients refused for reason.
func (p *Proxy) tapRefused(reason string) *atomic.Uint64 {
	return p.Metrics.Counter("tap_refused_total", "Tap clients refused, by reason.", metrics.Labels("reason", reason))
}

// TapAddr returns the bound tap address, or the zero AddrPort when tap is disabled.
func (p *Proxy) TapAddr() netip.AddrPort {
	if p.tapLn == nil {
		return netip.AddrPort{}
	}
	return p.tapLn.Addr().(*net.TCPAddr).AddrPort()
}

// Addrs returns the bound inbound, outbound and admin addresses (useful with port 0).
func (p *Proxy) Addrs() (inbound, outbound, admin netip.AddrPort) {
	ap := func(ln net.Listener) netip.AddrPort { return ln.Addr().(*net.TCPAddr).AddrPort() }
	return ap(p.inboundLn), ap(p.outboundLn), ap(p.adminLn)
}

// Shutdown stops the proxy and waits for it to finish.
func (p *Proxy) Shutdown() error {
	p.cancel()
	return p.Wait()
}

// Done is closed when the proxy has stopped.
func (p *Proxy) Done() <-chan struct{} { return p.done }

// Wait blocks until the proxy stops and returns the serving errors, if any.
func (p *Proxy) Wait() error {
	<-p.done
	return p.err
}

// accessLog is the running inbound access log, if any.
type accessLog struct {
	logger *accesslog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// startAccessLog starts writing the access log cfg asks for (to opts.AccessLog, else
// stderr) until stop; entries dropped because the writer fell behind are counted in
// access_log_dropped_total.
func startAccessLog(cfg *config.Config, opts Options, reg *metrics.Registry) accessLog {
	if cfg.AccessLog == 0 {
		return accessLog{}
	}
	w := opts.AccessLog
	if w == nil {
		w = os.Stderr
	}
	dropped := reg.Counter("access_log_dropped_total",
		"HTTP access log entries dropped because the log writer fell behind.", "")
	ctx, cancel := context.WithCancel(context.Background())
	l := accessLog{logger: accesslog.New(w, cfg.AccessLog, 0, dropped), cancel: cancel, done: make(chan struct{})}
	go func() { defer close(l.done); l.logger.Run(ctx) }()
	return l
}

// stop writes the queued entries and returns once the log has stopped.
func (l accessLog) stop() {
	if l.done != nil {
		l.cancel()
		<-l.done
	}
}

// meshedClient reports whether a connection's client has a verified mesh identity: as
// Linkerd's, the inbound proxy tells only such clients why it refused or failed a
// request (l5d-proxy-error).
func meshedClient(ci *forward.ConnInfo) bool { return ci != nil && ci.ClientID != "" }

// outboundErrorHeaders is whether the outbound proxy's error responses say why: not in
// ingress mode, where the application relays them to clients outside the cluster (nil:
// always).
func outboundErrorHeaders(cfg *config.Config) func(*forward.ConnInfo) bool {
	if cfg.IngressMode {
		return func(*forward.ConnInfo) bool { return false }
	}
	return nil
}
