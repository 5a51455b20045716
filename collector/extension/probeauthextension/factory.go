// Package probeauthextension implements the `probeauth` server
// authenticator: it checks a probe's bearer token (or, with mTLS, its
// verified client certificate) and records which probe it belongs to, so
// that the citytag processor can refuse a probe that reports under another
// probe's id. Attach it to the OTLP receiver's gRPC server with
// `auth: {authenticator: probeauth}` and to its HTTP server with that or,
// for client certificates there, `middlewares: [{id: probeauth}]`.
package probeauthextension

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/bantay-noc/bantay/collector/sharedstate"
)

// TypeStr is the extension's name in collector configs.
const TypeStr = "probeauth"

// ProbeIDHeader is the request header (gRPC metadata) in which a probe
// names itself. It is never trusted: the token decides who a request is
// from. It only lets a refusal name the probe that was probably meant.
const ProbeIDHeader = "bantay-probe-id"

// ProbeIDAttribute is the client.Info auth attribute holding the
// authenticated probe id.
const ProbeIDAttribute = "bantay.probe.id"

var componentType = component.MustNewType(TypeStr)

// NewFactory returns the probeauth extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(componentType, func() component.Config { return &Config{Extension: sharedstate.DefaultID} },
		create, component.StabilityLevelBeta)
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newAuthenticator(set, cfg.(*Config))
}
