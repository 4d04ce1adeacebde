// Command benchcp is the control plane of make bench-proxy's meshed path: an Identity
// service issuing certificates from a trust anchor it generates at start, and a
// Destination service whose profile for each -endpoint address names that endpoint with
// its identity and the HTTP/2 protocol hint, so that a client proxy sends the requests as
// mesh TLS + HTTP/2. Both serve with TLS under the control plane's usual identities.
// It writes the trust anchors (anchors.pem) and the service-account token (token) into
// -dir before it listens, then serves until killed. No inbound policy service: the proxies
// fall back to their default policy.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// The control plane's identities, as the proxies' LINKERD2_PROXY_*_SVC_NAME name them.
const (
	identitySvcName    = "identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
	destinationSvcName = "destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
	token              = "bench-token"
)

type endpoints []scriptedcp.Endpoint

func (e *endpoints) String() string { return fmt.Sprint(*e) }

// Set parses ADDR:PORT=IDENTITY.
func (e *endpoints) Set(s string) error {
	addr, id, ok := strings.Cut(s, "=")
	if !ok || id == "" {
		return fmt.Errorf("endpoint %q: want ADDR:PORT=IDENTITY", s)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", s, err)
	}
	*e = append(*e, scriptedcp.Endpoint{Addr: ap, Identity: id, H2: true})
	return nil
}

func main() {
	ip := flag.String("ip", "127.0.0.1", "address to listen on (identity on :8080, destination on :8086)")
	dir := flag.String("dir", "", "directory to write anchors.pem and token into")
	var eps endpoints
	flag.Var(&eps, "endpoint", "ADDR:PORT=IDENTITY of a meshed endpoint (repeatable)")
	flag.Parse()
	if err := run(*ip, *dir, eps); err != nil {
		slog.Error("benchcp", "err", err)
		os.Exit(1)
	}
	select {}
}

func run(ip, dir string, eps endpoints) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		return fmt.Errorf("trust hierarchy: %w", err)
	}
	idTLS, err := pki.ServerTLS(identitySvcName)
	if err != nil {
		return fmt.Errorf("identity certificate: %w", err)
	}
	dstTLS, err := pki.ServerTLS(destinationSvcName)
	if err != nil {
		return fmt.Errorf("destination certificate: %w", err)
	}
	dst := scriptedcp.NewDestination()
	for _, e := range eps {
		dst.SetProfile(e.Addr.String(), &destination.DestinationProfile{Endpoint: scriptedcp.WeightedAddr(e)})
	}
	ids := &scriptedcp.Identity{PKI: pki, Token: token, Lifetime: 24 * time.Hour}
	if _, err := ids.Start(ip+":8080", idTLS); err != nil {
		return err
	}
	if _, err := dst.Start(ip+":8086", dstTLS); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o644); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	// anchors.pem last: its presence tells the script that the services listen.
	tmp := filepath.Join(dir, "anchors.pem.tmp")
	if err := os.WriteFile(tmp, []byte(pki.AnchorsPEM()), 0o644); err != nil {
		return fmt.Errorf("anchors: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "anchors.pem")); err != nil {
		return fmt.Errorf("anchors: %w", err)
	}
	slog.Info("benchcp serving", "identity", ip+":8080", "destination", ip+":8086", "endpoints", len(eps))
	return nil
}
