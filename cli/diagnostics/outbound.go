package diagnostics

import (
	"context"
	"fmt"

	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// OutboundPolicy asks the outbound policy API at addr (host:port, plaintext gRPC) how a
// client proxy in namespace sourceNS routes traffic to authority
// ("svc.ns.svc.cluster.local:port"), as a proxy's Get call would.
func OutboundPolicy(ctx context.Context, addr, authority, sourceNS string) (*pb.OutboundPolicy, error) {
	if _, port, err := splitAuthority(authority); err != nil {
		return nil, err
	} else if port == 0 {
		return nil, fmt.Errorf("authority %q: port must be 1-65535", authority)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("policy API at %s: %w", addr, err)
	}
	defer conn.Close()
	p, err := pb.NewOutboundPoliciesClient(conn).Get(ctx, &pb.TrafficSpec{
		SourceWorkload: sourceNS + ":linkerd-cli",
		Target:         &pb.TrafficSpec_Authority{Authority: authority},
	})
	if err != nil {
		return nil, fmt.Errorf("policy API at %s: %w", addr, err)
	}
	return p, nil
}
