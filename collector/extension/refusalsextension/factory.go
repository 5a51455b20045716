// Package refusalsextension implements the `refusals` server middleware:
// attached to the OTLP receiver's gRPC and HTTP servers (`middlewares:
// [{id: refusals}]`), it counts the requests the receiver itself refuses
// before any pipeline component sees them — undecodable protobuf or JSON,
// a wrong content type, a body over the size limit, a broken compressed
// body — by transport and reason, in bantay_otlp_refused_requests. What
// the pipeline refuses is counted there (citytag by point, the store by
// request), what probeauth refuses by probeauth.
package refusalsextension

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
)

// TypeStr is the extension's name in collector configs.
const TypeStr = "refusals"

var componentType = component.MustNewType(TypeStr)

// NewFactory returns the refusals extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(componentType, func() component.Config { return &Config{} }, create, component.StabilityLevelBeta)
}

func create(_ context.Context, set extension.Settings, _ component.Config) (extension.Extension, error) {
	return newCounter(set)
}
