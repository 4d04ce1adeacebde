package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// serviceHost is a Service named by a host name: <svc>.<ns>[.svc[.<domain>]].
type serviceHost struct{ name, namespace string }

// parseServiceHost reads a Service's DNS name. It accepts <svc>.<ns>, <svc>.<ns>.svc and
// <svc>.<ns>.svc.<domain>, with or without a final dot, and fails naming host otherwise.
func parseServiceHost(host, domain string) (serviceHost, error) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	h = strings.TrimSuffix(h, "."+domain)
	h = strings.TrimSuffix(h, ".svc")
	parts := strings.Split(h, ".")
	if len(parts) != 2 || !isDNSLabel(parts[0]) || !isDNSLabel(parts[1]) {
		return serviceHost{}, fmt.Errorf("host %q is neither an IP address nor <service>.<namespace>[.svc[.%s]]", host, domain)
	}
	return serviceHost{name: parts[0], namespace: parts[1]}, nil
}

// isDNSLabel reports whether s is an RFC 1123 label, as Service and namespace names are.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// resolver turns host:port targets into IP:port the node namespace can dial: IP addresses
// stay as they are (pod IPs, cluster IPs), Service names become the Service's cluster IP
// (kube-proxy's rules in the node namespace take it from there).
type resolver struct {
	services corelisters.ServiceLister
}

// resolve returns the address to dial for hostport.
func (r *resolver) resolve(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", hostport, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("target %q: port %q is not a number in 1-65535", hostport, port)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(addr.String(), port), nil
	}
	sh, err := parseServiceHost(host, ClusterDomain)
	if err != nil {
		return "", err
	}
	svc, err := r.services.Services(sh.namespace).Get(sh.name)
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("target %q: no Service %s/%s", hostport, sh.namespace, sh.name)
	}
	if err != nil {
		return "", fmt.Errorf("target %q: looking up Service %s/%s: %w", hostport, sh.namespace, sh.name, err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return "", fmt.Errorf("target %q: Service %s/%s has no cluster IP (%q)", hostport, sh.namespace, sh.name, svc.Spec.ClusterIP)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// connectProxy is an HTTP CONNECT proxy for the API server's "cluster" egress selection:
// it accepts on a host listener (a Unix socket), resolves each CONNECT target and dials
// it inside the node namespace, where pods and cluster IPs are reachable.
type connectProxy struct {
	ln      net.Listener
	resolve func(hostport string) (string, error)
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	log     *slog.Logger

	wg    sync.WaitGroup
	conns connSet
}

// maxConnectHeader bounds the CONNECT request head a client may send.
const maxConnectHeader = 16 << 10

// newConnectProxy starts serving ln; Close stops it.
func newConnectProxy(ln net.Listener, resolve func(string) (string, error), dial func(context.Context, string) (net.Conn, error), log *slog.Logger) *connectProxy {
	p := &connectProxy{ln: ln, resolve: resolve, dial: dial, log: log}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Error("egress proxy: accepting", "err", err)
			}
			return
		}
		if !p.conns.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.conns.untrack(c)
			p.handle(c)
		}()
	}
}

// reply writes a bodiless HTTP/1.1 response.
func reply(c net.Conn, code int, msg string) {
	if msg == "" {
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\n\r\n", code, http.StatusText(code))
		return
	}
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
}

// handle serves one connection: one CONNECT request, then bytes both ways.
func (p *connectProxy) handle(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(io.LimitReader(c, maxConnectHeader), 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		reply(c, http.StatusBadRequest, "malformed CONNECT request: "+err.Error())
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if req.Method != http.MethodConnect {
		reply(c, http.StatusMethodNotAllowed, "only CONNECT is served, not "+req.Method)
		c.Close()
		return
	}
	target := req.RequestURI
	addr, err := p.resolve(target)
	if err != nil {
		p.log.Warn("egress proxy: resolving", "target", target, "err", err)
		reply(c, http.StatusBadGateway, err.Error())
		c.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := p.dial(ctx, addr)
	cancel()
	if err != nil {
		p.log.Warn("egress proxy: dialling", "target", target, "addr", addr, "err", err)
		reply(c, http.StatusBadGateway, fmt.Sprintf("dialling %s for %s: %v", addr, target, err))
		c.Close()
		return
	}
	if !p.conns.track(up) {
		up.Close()
		c.Close()
		return
	}
	defer p.conns.untrack(up)
	p.log.Debug("egress proxy: connected", "target", target, "addr", addr)
	reply(c, http.StatusOK, "")
	// The client speaks only after the 200, so nothing of it can be buffered in br yet
	// except bytes sent early; forward those first.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		if _, err := up.Write(early); err != nil {
			up.Close()
			c.Close()
			return
		}
	}
	splice(c, up)
}

// Close stops accepting, closes every connection and waits for their handlers.
func (p *connectProxy) Close() error {
	p.conns.closeAll()
	err := p.ln.Close()
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("closing egress proxy listener: %w", err)
	}
	return nil
}

// egressSelectorConfig is the kube-apiserver --egress-selector-config-file content that
// sends the "cluster" egress (webhooks and aggregated API servers named by a Service,
// pods/proxy, services/proxy, logs and exec) through an HTTP CONNECT proxy on the Unix
// socket udsPath. The control-plane and etcd egresses stay direct.
func egressSelectorConfig(udsPath string) string {
	return `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: ` + strconv.Quote(udsPath) + `
- name: controlplane
  connection:
    proxyProtocol: Direct
- name: etcd
  connection:
    proxyProtocol: Direct
`
}
