// Package probeauthextension implements the `probeauth` server
// authenticator: it checks a probe's bearer token (or, with mTLS, its
// verified client certificate) and records which probe it belongs to, so
// that the citytag processor can refuse a probe that reports under another
// probe's id. Attach it to the OTLP receiver's gRPC server with
// `auth: {authenticator: probeauth}` and to its HTTP server with that or,
// for client certificates there, `middlewares: [{id: probeauth}]`.
package probeauthextension

//go:generate mdatagen metadata.yaml

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/collector/sharedstate"
)

// ProbeIDHeader is the request header (gRPC metadata) in which a probe
// names itself. It is never trusted: the token decides who a request is
// from. It only lets a refusal name the probe that was probably meant.
const ProbeIDHeader = "bantay-probe-id"

// ProbeIDAttribute is the client.Info auth attribute holding the
// authenticated probe id.
const ProbeIDAttribute = "bantay.probe.id"

// NewFactory returns the probeauth extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, func() component.Config { return &Config{Extension: sharedstate.DefaultID} },
		create, metadata.ExtensionStability)
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newAuthenticator(set, cfg.(*Config))
}
