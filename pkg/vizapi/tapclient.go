package vizapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/client-go/rest"

	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
)

// maxTapEventBytes bounds one line of a tap stream (an event with extracted headers).
const maxTapEventBytes = 1 << 20

// TapStream reads a tap's events. Close it to end the tap.
type TapStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Tap starts a tap of req.Target.Resource through the Kubernetes API server with client
// (a REST client of the API server, e.g. Discovery().RESTClient(), authenticating as the
// caller). A refusal comes back as the API server's error: apierrors.IsForbidden when the
// caller may not watch the resource's tap subresource, NotFound when nothing can be
// tapped, ServiceUnavailable when the tap API is not running.
func Tap(ctx context.Context, client rest.Interface, req TapByResourceRequest) (*TapStream, error) {
	path, err := TapPath(req.Target.Resource)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the tap request: %w", err)
	}
	rc, err := client.Post().AbsPath(path).SetHeader("Content-Type", "application/json").Body(body).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("tap %s/%s: %w", req.Target.Resource.Type, req.Target.Resource.Name, err)
	}
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 64<<10), maxTapEventBytes)
	return &TapStream{body: rc, sc: sc}, nil
}

// Next returns the next event, io.EOF when the tap ended.
func (s *TapStream) Next() (*pbtap.TapEvent, error) {
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 {
			continue
		}
		ev := &pbtap.TapEvent{}
		if err := protojson.Unmarshal(line, ev); err != nil {
			return nil, fmt.Errorf("decoding a tap event: %w", err)
		}
		return ev, nil
	}
	if err := s.sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the tap stream: %w", err)
	}
	return nil, io.EOF
}

// Close ends the tap.
func (s *TapStream) Close() error { return s.body.Close() }
