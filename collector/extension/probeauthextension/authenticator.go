package probeauthextension

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/collector/sharedstate"
)

var (
	errMissing   = errors.New("no bearer token: send \"authorization: Bearer <token>\" (or, on gRPC, a registered client certificate)")
	errMalformed = errors.New("authorization header is not \"Bearer <token>\"")
	// errUnknown is also the answer to a token that is not the claimed
	// probe's: the client is not told which probe ids are registered.
	errUnknown = errors.New("bearer token belongs to no registered probe")
	// errUnknownCert: a verified client certificate whose names are no
	// probe's (or more than one probe's).
	errUnknownCert = errors.New("client certificate belongs to no registered probe")
)

// Reasons a request is refused: the `reason` of bantay_probeauth_failures
// and of the probe_rejected event.
const (
	reasonMissing   = "missing"             // no authorization header
	reasonMalformed = "malformed"           // not "Bearer <token>"
	reasonUnknown   = "unknown_token"       // the token is no probe's (and no registered probe is claimed)
	reasonWrong     = "wrong_token"         // the request claims a registered probe, the token is not its
	reasonCert      = "unknown_certificate" // no token, and the verified client certificate names no one probe
)

type authenticator struct {
	probes     map[[32]byte]string
	certNames  map[string]string // certificate name → probe id
	registered map[string]struct{}
	failures   metric.Int64Counter
	reporter   *reporter
	extension  component.ID // the bantay extension; zero: none
}

var _ extensionauth.Server = (*authenticator)(nil)

func newAuthenticator(set extension.Settings, cfg *Config) (*authenticator, error) {
	a := &authenticator{
		probes:     make(map[[32]byte]string, len(cfg.Tokens)),
		certNames:  make(map[string]string, len(cfg.ClientCerts)),
		registered: make(map[string]struct{}, len(cfg.Tokens)+len(cfg.ClientCerts)),
		extension:  cfg.Extension,
	}
	for probe, name := range cfg.ClientCerts {
		a.certNames[name] = probe
		a.registered[probe] = struct{}{}
	}
	for probe, h := range cfg.Tokens {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != 32 {
			return nil, cfg.Validate()
		}
		a.probes[[32]byte(b)] = probe
		a.registered[probe] = struct{}{}
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	a.failures = tel.ProbeauthFailures
	a.reporter = newReporter(set.Logger, tel.ProbeauthUnreportedFailures)
	return a, nil
}

// Start finds the bantay extension named in the config, on whose event bus
// refusals are reported (`extension: ""`: counted and logged only).
func (a *authenticator) Start(_ context.Context, host component.Host) error {
	var owner sharedstate.Provider
	if a.extension != (component.ID{}) {
		p, err := sharedstate.Find(host, a.extension, "probeauth extension")
		if err != nil {
			return err
		}
		owner = p
	}
	a.reporter.start(owner)
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
	probe, claimed, reason, err := a.identify(ctx, sources)
	if err != nil {
		a.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
		a.reporter.report(ctx, reason, claimed, client.FromContext(ctx).Addr)
		return ctx, err
	}
	info := client.FromContext(ctx)
	info.Auth = probeAuth(probe)
	return client.NewContext(ctx, info), nil
}

// identify returns the probe the token (or, without one, the client
// certificate) belongs to, or the probe id the request claims, the reason
// it is refused and the error to answer.
func (a *authenticator) identify(ctx context.Context, sources map[string][]string) (probe, claimed, reason string, err error) {
	header := first(sources, "authorization")
	claimed = first(sources, ProbeIDHeader)
	if header == "" {
		if leaf := verifiedClientCert(ctx); leaf != nil && len(a.certNames) > 0 {
			if probe, ok := a.certProbe(leaf); ok {
				return probe, claimed, "", nil
			}
			return "", claimed, reasonCert, errUnknownCert
		}
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

// verifiedClientCert is the client certificate the gRPC server verified
// against its client_ca_file, or nil. (Only verified chains count: a
// certificate the server did not check proves nothing.)
func verifiedClientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}

// certProbe is the one probe whose registered name the certificate carries
// as a DNS or URI SAN or as its common name. A certificate naming two
// probes is neither's.
func (a *authenticator) certProbe(c *x509.Certificate) (string, bool) {
	names := append([]string{c.Subject.CommonName}, c.DNSNames...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	found := ""
	for _, n := range names {
		p, ok := a.certNames[n]
		if !ok {
			continue
		}
		if found != "" && found != p {
			return "", false
		}
		found = p
	}
	return found, found != ""
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
