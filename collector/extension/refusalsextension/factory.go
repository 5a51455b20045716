// Package refusalsextension implements the `refusals` server middleware:
// attached to the OTLP receiver's gRPC and HTTP servers (`middlewares:
// [{id: refusals}]`), it counts the requests the receiver itself refuses
// before any pipeline component sees them — undecodable protobuf or JSON,
// a wrong content type, a body over the size limit, a broken compressed
// body — by transport and reason, in bantay_otlp_refused_requests. On the
// gRPC server it also answers an undecodable message itself, with
// INVALID_ARGUMENT where grpc-go would answer INTERNAL (see
// GetGRPCServerOptions). What the pipeline refuses is counted there
// (citytag by point, the store by request), what probeauth refuses by
// probeauth.
package refusalsextension

//go:generate mdatagen metadata.yaml

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/bantay-noc/bantay/collector/extension/refusalsextension/internal/metadata"
)

// NewFactory returns the refusals extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, func() component.Config { return &Config{} }, create, metadata.ExtensionStability)
}

func create(_ context.Context, set extension.Settings, _ component.Config) (extension.Extension, error) {
	return newCounter(set)
}
