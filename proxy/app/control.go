package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/proto/gen/destination"
	pbidentity "github.com/l5d-go/l5d/proto/gen/identity"
	pbinbound "github.com/l5d-go/l5d/proto/gen/inbound"
	pboutbound "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/discovery"
	"github.com/l5d-go/l5d/proxy/identity"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/outpolicy"
	"github.com/l5d-go/l5d/proxy/trace"
)

// control is the proxy's control-plane side: its identity and discovery clients.
type control struct {
	id       *identity.Identity // nil when identity is disabled
	resolver *discovery.Resolver
	policy   pbinbound.InboundServerPoliciesClient // nil without a policy controller
	policies *outpolicy.Watcher                    // nil without a policy controller
	conns    []*grpc.ClientConn
	// exporter sends spans to the trace collector over traceConn; nil when tracing is off.
	exporter  *trace.Exporter
	traceConn *grpc.ClientConn
}

// identityEnabled reports whether cfg asks for a workload identity.
func identityEnabled(cfg *config.Config) bool {
	return !cfg.IdentityDisabled && cfg.IdentityAddr != ""
}

// startControl builds the identity and discovery clients named in cfg. Control-plane
// connections use TLS verified against the trust anchors with the *_SVC_NAME server
// names; the Destination connection presents the proxy's certificate once it has one.
func startControl(cfg *config.Config, reg *metrics.Registry, log *slog.Logger) (*control, error) {
	c := &control{}
	var anchors []*x509.Certificate
	if identityEnabled(cfg) {
		if cfg.IdentityLocalName == "" {
			return nil, fmt.Errorf("%s must be set when %s is", config.EnvIdentityLocalName, config.EnvIdentityAddr)
		}
		if cfg.IdentityName == "" {
			return nil, fmt.Errorf("%s must be set when %s is", config.EnvIdentityName, config.EnvIdentityAddr)
		}
		var err error
		anchors, err = certs.ParseCertificatesPEM([]byte(cfg.IdentityTrustAnchors))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvIdentityTrustAnchors, err)
		}
		cc, err := dialControl(cfg.IdentityAddr, cfg.IdentityName, certs.NewPool(anchors...), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvIdentityAddr, err)
		}
		c.conns = append(c.conns, cc)
		c.id, err = identity.New(identity.Options{
			Client:       pbidentity.NewIdentityClient(cc),
			LocalName:    cfg.IdentityLocalName,
			TokenFile:    cfg.IdentityTokenFile,
			TrustAnchors: anchors,
			Metrics:      reg,
			Log:          log,
		})
		if err != nil {
			c.close()
			return nil, err
		}
	}
	// Discovery starts once the policy client exists: it follows outbound policies.
	var dstClient destination.DestinationClient
	var policies *outpolicy.Watcher
	if cfg.DestinationAddr != "" {
		var cc *grpc.ClientConn
		var err error
		if c.id != nil {
			name := cfg.DestinationName
			if name == "" {
				c.close()
				return nil, fmt.Errorf("%s must be set when identity is enabled", config.EnvDestinationName)
			}
			cc, err = dialControl(cfg.DestinationAddr, name, c.id.Roots(), c.id.Certificate)
		} else {
			cc, err = dialControl(cfg.DestinationAddr, "", nil, nil)
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("%s: %w", config.EnvDestinationAddr, err)
		}
		c.conns = append(c.conns, cc)
		dstClient = destination.NewDestinationClient(cc)
	}
	if cfg.PolicyAddr != "" {
		if cfg.PolicyWorkload == "" {
			c.close()
			return nil, fmt.Errorf("%s must be set when %s is", config.EnvPolicyWorkload, config.EnvPolicyAddr)
		}
		var cc *grpc.ClientConn
		var err error
		if c.id != nil {
			if cfg.PolicyName == "" {
				c.close()
				return nil, fmt.Errorf("%s must be set when identity is enabled", config.EnvPolicyName)
			}
			cc, err = dialControl(cfg.PolicyAddr, cfg.PolicyName, c.id.Roots(), c.id.Certificate)
		} else {
			cc, err = dialControl(cfg.PolicyAddr, "", nil, nil)
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("%s: %w", config.EnvPolicyAddr, err)
		}
		c.conns = append(c.conns, cc)
		c.policy = pbinbound.NewInboundServerPoliciesClient(cc)
		policies = outpolicy.NewWatcher(outpolicy.Options{
			Client: pboutbound.NewOutboundPoliciesClient(cc), Workload: cfg.PolicyWorkload, Metrics: reg, Log: log})
		c.policies = policies
	}
	if dstClient != nil {
		c.resolver = discovery.New(discovery.Options{
			Client:       dstClient,
			ContextToken: cfg.DestinationContext,
			IdleTimeout:  cfg.Outbound.DiscoveryIdleTimeout,
			Policies:     policies,
			Metrics:      reg,
			Log:          log,
		})
		r := c.resolver
		reg.Func("control_plane_stale_streams", "gauge",
			"Discovery streams disconnected from the control plane and serving their last known state",
			"", func() float64 { return float64(r.Stale()) })
	}
	if err := startTracing(cfg, c, reg, log); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// run keeps the identity certificate fresh until ctx ends.
func (c *control) run(ctx context.Context) {
	if c.exporter != nil {
		go c.exporter.Run(ctx)
	}
	if c.id != nil {
		c.id.Run(ctx)
	}
}

func (c *control) close() {
	if c.resolver != nil {
		c.resolver.Close()
	}
	for _, cc := range c.conns {
		cc.Close()
	}
}

// dialControl returns a client connection to a control-plane service: TLS verified
// against roots for serverName when roots is set (presenting cert's result when cert is
// non-nil and has a certificate), plaintext otherwise (identity disabled).
func dialControl(addr, serverName string, roots *x509.CertPool, cert func() *tls.Certificate) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	// A control-plane address naming localhost is a controller in this pod (the identity pod's own
	// proxy calls localhost.:8080): it is reached in plaintext, as Linkerd's proxy does, since
	// that connection never leaves the pod and the controller behind it serves no TLS.
	if roots != nil && !isLoopback(addr) {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: serverName}
		if cert != nil {
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if c := cert(); c != nil {
					return c, nil
				}
				return &tls.Certificate{}, nil // none yet: connect without a client certificate
			}
		}
		creds = credentials.NewTLS(tc)
	}
	cc, err := grpc.NewClient(loopbackName(addr), grpc.WithTransportCredentials(creds),
		// No service config from DNS TXT records: Linkerd's controllers publish none, and
		// the lookup, made before every (re)connection, waits out the resolver's timeout
		// (10s) wherever no DNS server answers TXT queries, delaying the first
		// certificate and every discovery answer by as much.
		grpc.WithDisableServiceConfig(),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 10 * time.Second}),
		// Reconnect soon after the control plane returns: streams resume within seconds.
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 5 * time.Second, Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}}))
	if err != nil {
		return nil, fmt.Errorf("control-plane client for %s: %w", addr, err)
	}
	return cc, nil
}

// loopbackName rewrites the fully qualified "localhost." (what Linkerd's identity pod is
// told to call: the trailing dot keeps search domains out) to "localhost": resolvers answer
// "localhost" from the hosts file, but may send "localhost." to a DNS server, which a pod
// without one never hears back from. Other addresses are returned unchanged.
func loopbackName(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !strings.EqualFold(host, "localhost.") {
		return addr
	}
	return net.JoinHostPort("localhost", port)
}

// isLoopback reports whether addr names the host localhost (with or without the root
// dot), which is how a chart points a proxy at a controller in its own pod. Literal
// loopback IPs keep TLS: tests and local setups serve a TLS control plane there.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")
}
