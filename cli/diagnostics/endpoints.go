// Package diagnostics implements `linkerd diagnostics`: it asks the control plane's gRPC
// APIs what they answer proxies and prints it.
package diagnostics

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Endpoint is one address the Destination API returned for an authority.
type Endpoint struct {
	Namespace, Pod, Service string
	Addr                    netip.AddrPort
}

// Endpoints asks the Destination API at addr (host:port, plaintext gRPC, as reached with
// --destination-addr or a port-forward) for authority ("svc.ns.svc.cluster.local:port")
// and returns the endpoints of its first answer, sorted by address.
func Endpoints(ctx context.Context, addr, authority string) ([]Endpoint, error) {
	if _, port, err := splitAuthority(authority); err != nil {
		return nil, err
	} else if port == 0 {
		return nil, fmt.Errorf("authority %q: port must be 1-65535", authority)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("destination API at %s: %w", addr, err)
	}
	defer conn.Close()
	stream, err := pb.NewDestinationClient(conn).Get(ctx, &pb.GetDestination{Scheme: "k8s", Path: authority})
	if err != nil {
		return nil, fmt.Errorf("destination API at %s: %w", addr, err)
	}
	up, err := stream.Recv()
	if status.Code(err) == codes.NotFound || status.Code(err) == codes.InvalidArgument {
		// As Linkerd's destination: no such Service, or a name that is not a Service's.
		return nil, fmt.Errorf("%s is not a known service: %s", authority, status.Convert(err).Message())
	}
	if err != nil {
		return nil, fmt.Errorf("destination API at %s: %w", addr, err)
	}
	if ne := up.GetNoEndpoints(); ne != nil {
		if !ne.GetExists() {
			return nil, fmt.Errorf("%s is not a known service", authority)
		}
		return nil, nil
	}
	add := up.GetAdd()
	if add == nil {
		return nil, errors.New("destination API answered with a removal first")
	}
	var out []Endpoint
	for _, a := range add.GetAddrs() {
		ap, err := addrPort(a.GetAddr())
		if err != nil {
			return nil, err
		}
		l := a.GetMetricLabels()
		svc := add.GetMetricLabels()["service"]
		ns := add.GetMetricLabels()["namespace"]
		if svc != "" && ns != "" {
			svc += "." + ns
		}
		out = append(out, Endpoint{Namespace: ns, Pod: l["pod"], Service: svc, Addr: ap})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Compare(out[j].Addr) < 0 })
	return out, nil
}

// WriteEndpoints prints endpoints as Linkerd's table (NAMESPACE IP PORT POD SERVICE).
func WriteEndpoints(w io.Writer, authority string, eps []Endpoint) {
	if len(eps) == 0 {
		fmt.Fprintf(w, "No endpoints found for %s.\n", authority)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tIP\tPORT\tPOD\tSERVICE")
	for _, e := range eps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.Namespace, e.Addr.Addr(), e.Addr.Port(), e.Pod, e.Service)
	}
	tw.Flush()
}

func splitAuthority(a string) (string, uint16, error) {
	i := strings.LastIndexByte(a, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("authority %q: want host:port, e.g. web-svc.emojivoto.svc.cluster.local:80", a)
	}
	p, err := strconv.ParseUint(a[i+1:], 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("authority %q: bad port: %w", a, err)
	}
	return a[:i], uint16(p), nil
}

func addrPort(t *pbnet.TcpAddress) (netip.AddrPort, error) {
	if t == nil || t.GetIp() == nil {
		return netip.AddrPort{}, errors.New("endpoint without an address")
	}
	var ip netip.Addr
	switch v := t.GetIp().GetIp().(type) {
	case *pbnet.IPAddress_Ipv4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v.Ipv4)
		ip = netip.AddrFrom4(b)
	case *pbnet.IPAddress_Ipv6:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], v.Ipv6.GetFirst())
		binary.BigEndian.PutUint64(b[8:], v.Ipv6.GetLast())
		ip = netip.AddrFrom16(b)
	default:
		return netip.AddrPort{}, errors.New("endpoint with an unknown address type")
	}
	return netip.AddrPortFrom(ip, uint16(t.GetPort())), nil
}
