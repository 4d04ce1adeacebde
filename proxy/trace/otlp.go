package trace

import (
	"context"
	"fmt"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The OTLP trace service's one call. The request and response envelopes are encoded here
// rather than with go.opentelemetry.io/proto/otlp/collector/trace/v1, whose package also
// carries an HTTP gateway that would link grpc-gateway's runtime into the proxy (300 KB)
// for two one-field messages.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawCodec sends and receives gRPC messages already encoded as *[]byte. Its name is
// "proto", so the content type is application/grpc+proto as for a generated client.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("trace: cannot encode %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("trace: cannot decode into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// exportResult is the collector's ExportTracePartialSuccess, zero when it took everything.
type exportResult struct {
	rejected int64
	message  string
}

// export sends resourceSpans as one ExportTraceServiceRequest over conn.
func export(ctx context.Context, conn grpc.ClientConnInterface, resourceSpans []*tracepb.ResourceSpans) (exportResult, error) {
	var req []byte
	for _, rs := range resourceSpans {
		b, err := proto.Marshal(rs)
		if err != nil {
			return exportResult{}, fmt.Errorf("encoding spans: %w", err)
		}
		req = protowire.AppendTag(req, 1, protowire.BytesType) // resource_spans
		req = protowire.AppendBytes(req, b)
	}
	var resp []byte
	if err := conn.Invoke(ctx, exportMethod, &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		return exportResult{}, err
	}
	return decodeExportResponse(resp)
}

// decodeExportResponse reads partial_success (field 1) of an ExportTraceServiceResponse:
// rejected_spans (1) and error_message (2). Unknown fields are skipped.
func decodeExportResponse(b []byte) (exportResult, error) {
	var r exportResult
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
			switch {
			case num == 1 && typ == protowire.VarintType:
				r.rejected = int64(n)
			case num == 2 && typ == protowire.BytesType:
				r.message = string(v)
			}
			return nil
		})
	})
	return r, err
}

// eachField calls fn with each field of the encoded message b: its number and type, and
// its bytes (length-delimited fields) or value (varints).
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte, uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decoding the collector's answer: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("decoding the collector's answer: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
