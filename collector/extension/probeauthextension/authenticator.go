package probeauthextension

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/collector/extension/extensionmiddleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/collector/sharedstate"
)

var (
	errMissing   = errors.New("no bearer token: send \"authorization: Bearer <token>\" (or a registered client certificate)")
	errMalformed = errors.New("authorization header is not \"Bearer <token>\"")
	// errUnknown is also the answer to a token that is not the claimed
	// probe's: the client is not told which probe ids are registered.
	errUnknown = errors.New("bearer token belongs to no registered probe")
	// errUnknownCert: a verified client certificate whose names are no
	// probe's (or more than one probe's).
	errUnknownCert = errors.New("client certificate belongs to no registered probe")
	// errCertMismatch: a token and a verified client certificate of two
	// different registered probes; either could be stolen, so neither counts.
	errCertMismatch = errors.New("bearer token and client certificate belong to different probes")
)

// Reasons a request is refused: the `reason` of bantay_probeauth_failures
// and of the probe_rejected event.
const (
	reasonMissing   = "missing"              // no authorization header
	reasonMalformed = "malformed"            // not "Bearer <token>"
	reasonUnknown   = "unknown_token"        // the token is no probe's (and no registered probe is claimed)
	reasonWrong     = "wrong_token"          // the request claims a registered probe, the token is not its
	reasonCert      = "unknown_certificate"  // no token, and the verified client certificate names no one probe
	reasonMismatch  = "certificate_mismatch" // the token is one probe's, the verified certificate another's
)

type authenticator struct {
	probes     map[[32]byte]string
	certNames  map[string]string // certificate name → probe id
	registered map[string]struct{}
	failures   metric.Int64Counter
	reporter   *reporter
	extension  component.ID // the bantay extension; zero: none
}

var (
	_ extensionauth.Server           = (*authenticator)(nil)
	_ extensionmiddleware.HTTPServer = (*authenticator)(nil)
)

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
	return a.authenticate(ctx, sources, verifiedClientCert(ctx))
}

// GetHTTPHandler makes probeauth an OTLP/HTTP server middleware
// (`middlewares: [{id: probeauth}]` in place of `auth:`), so that a probe
// may authenticate there with its client certificate too: confighttp hands
// an authenticator the headers only, a middleware gets the request and its
// TLS state. A refusal is answered 401 as `auth:` answers it.
func (a *authenticator) GetHTTPHandler(context.Context) (extensionmiddleware.WrapHTTPHandlerFunc, error) {
	return func(_ context.Context, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, err := a.authenticate(r.Context(), r.Header, verifiedLeaf(r.TLS))
			if err != nil {
				writeUnauthenticated(w, r, err.Error())
				return
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		}), nil
	}, nil
}

// writeUnauthenticated answers 401 with a google.rpc.Status in the
// request's encoding, as the OTLP receiver answers its own refusals (the
// probe logs the status message).
func writeUnauthenticated(w http.ResponseWriter, r *http.Request, msg string) {
	st := &spb.Status{Code: int32(codes.Unauthenticated), Message: msg}
	// A Status of a code and a valid UTF-8 message always encodes.
	contentType := "application/x-protobuf"
	body, _ := proto.Marshal(st)
	if strings.Contains(r.Header.Get("Content-Type"), "json") {
		contentType = "application/json"
		body, _ = protojson.Marshal(st)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}

// authenticate is Authenticate with the client certificate the server
// verified (nil: none).
func (a *authenticator) authenticate(ctx context.Context, sources map[string][]string, leaf *x509.Certificate) (context.Context, error) {
	probe, claimed, reason, err := a.identify(leaf, sources)
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
func (a *authenticator) identify(leaf *x509.Certificate, sources map[string][]string) (probe, claimed, reason string, err error) {
	header := first(sources, "authorization")
	claimed = first(sources, ProbeIDHeader)
	if header == "" {
		if leaf != nil && len(a.certNames) > 0 {
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
	// A certificate adds to the token: when it names a registered probe, it
	// must be the token's.
	if leaf != nil {
		if other, ok := a.certProbe(leaf); ok && other != probe {
			return "", claimed, reasonMismatch, errCertMismatch
		}
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
	if !ok {
		return nil
	}
	return verifiedLeaf(&ti.State)
}

// verifiedLeaf is the leaf of the first chain the server verified, or nil
// (no TLS, no client certificate, or one not checked against a CA).
func verifiedLeaf(st *tls.ConnectionState) *x509.Certificate {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
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
