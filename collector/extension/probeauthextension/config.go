package probeauthextension

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/component"
)

// Config maps each probe to the SHA-256 of its bearer token. Only hashes are
// kept on the collector, so a leaked collector config does not leak
// credentials. Make a token and its hash with:
//
//	token=$(openssl rand -hex 32); printf %s "$token" | sha256sum
type Config struct {
	// Extension names the bantay extension whose event feed refusals are
	// reported to (default "bantay"; empty: counted and logged only).
	Extension component.ID `mapstructure:"extension"`

	// Tokens maps probe id → hex SHA-256 of the probe's bearer token. Keep it
	// in its own file: `tokens: ${file:/etc/bantay/probe-tokens.yaml}`.
	Tokens map[string]string `mapstructure:"tokens"`

	// ClientCerts maps probe id → the name its client certificate carries
	// (a DNS or URI subject alternative name, or the subject's common name),
	// for probes that authenticate with mTLS instead of a token: with the
	// receiver's tls.client_ca_file set, a request without an authorization
	// header is that probe's if its verified certificate carries the name.
	// On OTLP/gRPC that is `auth: {authenticator: probeauth}`; on OTLP/HTTP
	// `middlewares: [{id: probeauth}]` in its place (confighttp gives an
	// authenticator the headers only, a middleware the TLS state too).
	ClientCerts map[string]string `mapstructure:"client_certs"`
}

// Validate names the first bad entry.
func (cfg *Config) Validate() error {
	if len(cfg.Tokens) == 0 && len(cfg.ClientCerts) == 0 {
		return errors.New("tokens: at least one probe must have a token hash (or client_certs a certificate name)")
	}
	seen := make(map[string]string, len(cfg.Tokens))
	for probe, h := range cfg.Tokens {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != 32 {
			return fmt.Errorf("tokens::%s: want the 64-hex-digit SHA-256 of the token, got %d characters", probe, len(h))
		}
		if other, dup := seen[string(b)]; dup {
			return fmt.Errorf("tokens::%s: same token as probe %s; every probe needs its own", probe, other)
		}
		seen[string(b)] = probe
	}
	names := make(map[string]string, len(cfg.ClientCerts))
	for _, probe := range slices.Sorted(maps.Keys(cfg.ClientCerts)) {
		name := cfg.ClientCerts[probe]
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("client_certs::%s: want the name in the probe's certificate (SAN or CN), got none", probe)
		}
		if other, dup := names[name]; dup {
			return fmt.Errorf("client_certs::%s: %q is also probe %s's certificate name; every probe needs its own", probe, name, other)
		}
		names[name] = probe
	}
	return nil
}
