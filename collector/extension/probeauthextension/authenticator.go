package probeauthextension

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var (
	errMissing   = errors.New("no bearer token: send \"authorization: Bearer <token>\"")
	errMalformed = errors.New("authorization header is not \"Bearer <token>\"")
	errUnknown   = errors.New("bearer token belongs to no registered probe")
)

type authenticator struct {
	component.StartFunc
	component.ShutdownFunc
	probes   map[[32]byte]string
	failures metric.Int64Counter
}

var _ extensionauth.Server = (*authenticator)(nil)

func newAuthenticator(set extension.Settings, cfg *Config) (*authenticator, error) {
	a := &authenticator{probes: make(map[[32]byte]string, len(cfg.Tokens))}
	for probe, h := range cfg.Tokens {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != 32 {
			return nil, cfg.Validate()
		}
		a.probes[[32]byte(b)] = probe
	}
	var err error
	a.failures, err = set.MeterProvider.Meter("github.com/bantay-noc/bantay/collector/extension/probeauthextension").
		Int64Counter("bantay_probeauth_failures",
			metric.WithDescription("OTLP requests refused for a missing, malformed or unknown probe token, by reason."),
			metric.WithUnit("{request}"))
	return a, err
}

// Authenticate accepts a request whose bearer token hashes to a registered
// probe and records that probe's id in the client info.
func (a *authenticator) Authenticate(ctx context.Context, sources map[string][]string) (context.Context, error) {
	probe, reason, err := a.identify(sources)
	if err != nil {
		a.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
		return ctx, err
	}
	info := client.FromContext(ctx)
	info.Auth = probeAuth(probe)
	return client.NewContext(ctx, info), nil
}

func (a *authenticator) identify(sources map[string][]string) (string, string, error) {
	var header string
	for k, v := range sources {
		if strings.EqualFold(k, "authorization") && len(v) > 0 {
			header = v[0]
			break
		}
	}
	if header == "" {
		return "", "missing", errMissing
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", "malformed", errMalformed
	}
	probe, ok := a.probes[sha256.Sum256([]byte(strings.TrimSpace(token)))]
	if !ok {
		return "", "unknown_token", errUnknown
	}
	return probe, "", nil
}

// probeAuth is the client.AuthData of an authenticated probe.
type probeAuth string

func (p probeAuth) GetAttribute(name string) any {
	if name == ProbeIDAttribute || name == "subject" {
		return string(p)
	}
	return nil
}

func (probeAuth) GetAttributeNames() []string { return []string{ProbeIDAttribute, "subject"} }
