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
	// errUnknown is also the answer to a token that is not the claimed
	// probe's: the client is not told which probe ids are registered.
	errUnknown = errors.New("bearer token belongs to no registered probe")
)

// Reasons a request is refused: the `reason` of bantay_probeauth_failures
// and of the probe_rejected event.
const (
	reasonMissing   = "missing"       // no authorization header
	reasonMalformed = "malformed"     // not "Bearer <token>"
	reasonUnknown   = "unknown_token" // the token is no probe's (and no registered probe is claimed)
	reasonWrong     = "wrong_token"   // the request claims a registered probe, the token is not its
)

type authenticator struct {
	probes     map[[32]byte]string
	registered map[string]struct{}
	failures   metric.Int64Counter
	reporter   *reporter
}

var _ extensionauth.Server = (*authenticator)(nil)

func newAuthenticator(set extension.Settings, cfg *Config) (*authenticator, error) {
	a := &authenticator{
		probes:     make(map[[32]byte]string, len(cfg.Tokens)),
		registered: make(map[string]struct{}, len(cfg.Tokens)),
	}
	for probe, h := range cfg.Tokens {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != 32 {
			return nil, cfg.Validate()
		}
		a.probes[[32]byte(b)] = probe
		a.registered[probe] = struct{}{}
	}
	meter := set.MeterProvider.Meter("github.com/bantay-noc/bantay/collector/extension/probeauthextension")
	var err error
	a.failures, err = meter.Int64Counter("bantay_probeauth_failures",
		metric.WithDescription("OTLP requests refused for a missing, malformed, unknown or wrong probe token, by reason."),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	a.reporter, err = newReporter(set.Logger, meter)
	return a, err
}

// Start finds the collector's event bus (the bantay extension), on which
// refusals are reported.
func (a *authenticator) Start(_ context.Context, host component.Host) error {
	a.reporter.start(host)
	return nil
}

// Shutdown stops reporting.
func (a *authenticator) Shutdown(context.Context) error {
	a.reporter.shutdown()
	return nil
}

// Authenticate accepts a request whose bearer token hashes to a registered
// probe and records that probe's id in the client info. A refusal is
// counted, and reported (rate-limited) as a probe_rejected event naming
// the peer address and the probe id the request claims in the
// bantay-probe-id header, if any.
func (a *authenticator) Authenticate(ctx context.Context, sources map[string][]string) (context.Context, error) {
	probe, claimed, reason, err := a.identify(sources)
	if err != nil {
		a.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
		a.reporter.report(ctx, reason, claimed, client.FromContext(ctx).Addr)
		return ctx, err
	}
	info := client.FromContext(ctx)
	info.Auth = probeAuth(probe)
	return client.NewContext(ctx, info), nil
}

// identify returns the probe the token belongs to, or the probe id the
// request claims, the reason it is refused and the error to answer.
func (a *authenticator) identify(sources map[string][]string) (probe, claimed, reason string, err error) {
	header := first(sources, "authorization")
	claimed = first(sources, ProbeIDHeader)
	if header == "" {
		return "", claimed, reasonMissing, errMissing
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", claimed, reasonMalformed, errMalformed
	}
	probe, ok = a.probes[sha256.Sum256([]byte(strings.TrimSpace(token)))]
	if !ok {
		if _, known := a.registered[claimed]; known {
			return "", claimed, reasonWrong, errUnknown
		}
		return "", claimed, reasonUnknown, errUnknown
	}
	return probe, claimed, "", nil
}

// first is the first value of a header, by case-insensitive name (HTTP
// canonicalises names, gRPC lower-cases them).
func first(sources map[string][]string, name string) string {
	for k, v := range sources {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
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
