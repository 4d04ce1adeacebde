package diagnostics

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Profile asks the Destination API at addr (plaintext gRPC) for the profile it serves a proxy
// in namespace clientNS for authority ("svc.ns.svc.cluster.local:port"): its routes, retry
// budget, traffic split and opaque-protocol flag, as `linkerd diagnostics profile` prints.
func Profile(ctx context.Context, addr, authority, clientNS string) (*pb.DestinationProfile, error) {
	if _, port, err := splitAuthority(authority); err != nil {
		return nil, err
	} else if port == 0 {
		return nil, fmt.Errorf("authority %q: port must be 1-65535", authority)
	}
	token, err := json.Marshal(map[string]string{"ns": clientNS})
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("destination API at %s: %w", addr, err)
	}
	defer conn.Close()
	stream, err := pb.NewDestinationClient(conn).GetProfile(ctx, &pb.GetDestination{Scheme: "k8s", Path: authority, ContextToken: string(token)})
	if err != nil {
		return nil, fmt.Errorf("destination API at %s: %w", addr, err)
	}
	p, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("destination API at %s: profile of %s: %w", addr, authority, err)
	}
	return p, nil
}
