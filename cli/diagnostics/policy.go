package diagnostics

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Policy asks the inbound policy API at addr (host:port, plaintext gRPC) which policy
// the proxy of workload ("namespace:pod") enforces on port, as a proxy's GetPort call would.
func Policy(ctx context.Context, addr, workload string, port uint32) (*pb.Server, error) {
	ns, pod, ok := strings.Cut(workload, ":")
	if !ok || ns == "" || pod == "" {
		return nil, fmt.Errorf("workload %q: want namespace:pod", workload)
	}
	if port == 0 || port > 65535 {
		return nil, fmt.Errorf("port %d: must be 1-65535", port)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("policy API at %s: %w", addr, err)
	}
	defer conn.Close()
	srv, err := pb.NewInboundServerPoliciesClient(conn).GetPort(ctx, &pb.PortSpec{Workload: workload, Port: port})
	if err != nil {
		return nil, fmt.Errorf("policy API at %s: %w", addr, err)
	}
	return srv, nil
}

// WritePolicy prints a policy answer (an inbound Server or an OutboundPolicy) as
// indented JSON (format "json") or YAML (format "yaml").
func WritePolicy(w io.Writer, srv proto.Message, format string) error {
	compact, err := protojson.Marshal(srv)
	if err != nil {
		return fmt.Errorf("encoding policy: %w", err)
	}
	// protojson varies its whitespace on purpose; indent it the same way every time.
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return fmt.Errorf("encoding policy: %w", err)
	}
	js := buf.Bytes()
	switch format {
	case "json":
		_, err = fmt.Fprintf(w, "%s\n", js)
	case "yaml":
		var y []byte
		if y, err = yaml.JSONToYAML(js); err == nil {
			_, err = w.Write(y)
		}
	default:
		return fmt.Errorf("output format %q: want json or yaml", format)
	}
	return err
}
