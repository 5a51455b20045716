package otlpload

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// ExportMethod is the OTLP/gRPC metrics export method.
const ExportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// ExportRaw sends body as it is as an OTLP/gRPC metrics export on conn and
// ignores any answer but the error: what a broken or hostile sender sends.
func ExportRaw(ctx context.Context, conn *grpc.ClientConn, body []byte, opts ...grpc.CallOption) error {
	return conn.Invoke(ctx, ExportMethod, body, new([]byte), append(opts, grpc.ForceCodecV2(rawCodec{}))...)
}

// rawCodec sends bytes as they are and reads nothing.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(mem.BufferSlice, any) error { return nil }

func (rawCodec) Name() string { return "proto" }
