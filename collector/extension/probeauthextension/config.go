package probeauthextension

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Config maps each probe to the SHA-256 of its bearer token. Only hashes are
// kept on the collector, so a leaked collector config does not leak
// credentials. Make a token and its hash with:
//
//	token=$(openssl rand -hex 32); printf %s "$token" | sha256sum
type Config struct {
	// Tokens maps probe id → hex SHA-256 of the probe's bearer token. Keep it
	// in its own file: `tokens: ${file:/etc/bantay/probe-tokens.yaml}`.
	Tokens map[string]string `mapstructure:"tokens"`
}

// Validate names the first bad entry.
func (cfg *Config) Validate() error {
	if len(cfg.Tokens) == 0 {
		return errors.New("tokens: at least one probe must have a token hash")
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
	return nil
}
