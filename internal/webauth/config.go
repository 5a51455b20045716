package webauth

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Roles a credential can have. An admin can do everything a reader can.
const (
	RoleReader = "reader"
	RoleAdmin  = "admin"
)

// Config is the listener's access policy. With no credentials the policy
// is off: every route is open, as before the policy existed, and the
// extension warns at start that reads are unauthenticated.
type Config struct {
	// Credentials maps a name (the basic-auth user name) to its role and
	// secret, stored hashed: keep them in their own file,
	// `credentials: ${file:/etc/bantay/web-credentials.yaml}`.
	Credentials map[string]Credential `mapstructure:"credentials"`
	Session     SessionConfig         `mapstructure:"session"`
	// FailedLogins limits wrong passwords per client address.
	FailedLogins LimitConfig `mapstructure:"failed_logins"`
}

// Credential is one identity. Exactly one of TokenSHA256 and Bcrypt is set.
type Credential struct {
	// Role is "reader" (Prometheus API, /metrics, heatmap JSON, the page)
	// or "admin" (also /-/reload).
	Role string `mapstructure:"role"`
	// TokenSHA256 is the hex SHA-256 of a bearer token
	// (token=$(openssl rand -hex 32); printf %s "$token" | sha256sum).
	TokenSHA256 string `mapstructure:"token_sha256"`
	// Bcrypt is the bcrypt hash of a password for basic auth and the login
	// form (htpasswd -nbBC 12 user 'password' | cut -d: -f2).
	Bcrypt string `mapstructure:"bcrypt"`
}

// SessionConfig configures the browser session cookie the login form sets.
type SessionConfig struct {
	// KeyFile holds the key (at least 32 bytes) sessions are signed with.
	// Empty: a random key per start, so a restart logs every browser out.
	KeyFile string `mapstructure:"key_file"`
	// TTL is how long a login lasts. A wall screen's websocket stays open
	// past it, but reconnecting needs a new login.
	TTL time.Duration `mapstructure:"ttl"`
}

// LimitConfig is a token bucket of failures per client address: Burst
// wrong passwords at once, then one more every Every. An address over it
// gets 429 with Retry-After before any password is checked.
type LimitConfig struct {
	Burst int           `mapstructure:"burst"`
	Every time.Duration `mapstructure:"every"`
}

// DefaultConfig is the policy switched off, with the session and limit
// settings a policy gets when credentials are added.
func DefaultConfig() Config {
	return Config{
		Session:      SessionConfig{TTL: 12 * time.Hour},
		FailedLogins: LimitConfig{Burst: 10, Every: 6 * time.Second},
	}
}

// Enabled reports whether any credential is configured.
func (c *Config) Enabled() bool { return len(c.Credentials) > 0 }

// minKeyBytes is HMAC-SHA256's block-size-independent security level.
const minKeyBytes = 32

// Validate names the first bad field. It never quotes a secret.
func (c *Config) Validate() error {
	names := make([]string, 0, len(c.Credentials))
	for n := range c.Credentials {
		names = append(names, n)
	}
	slices.Sort(names) // the same error for the same file, whatever the map order
	seen := map[string]string{}
	for _, n := range names {
		cr := c.Credentials[n]
		field := "credentials::" + n
		if n == "" || strings.ContainsAny(n, ": \t\r\n") {
			return fmt.Errorf("%s: a name must be non-empty, without spaces or ':' (it is the basic-auth user)", field)
		}
		if cr.Role != RoleReader && cr.Role != RoleAdmin {
			return fmt.Errorf("%s::role: %q is not %q or %q", field, cr.Role, RoleReader, RoleAdmin)
		}
		switch {
		case (cr.TokenSHA256 == "") == (cr.Bcrypt == ""):
			return fmt.Errorf("%s: set exactly one of token_sha256 and bcrypt", field)
		case cr.TokenSHA256 != "":
			b, err := hex.DecodeString(strings.TrimSpace(cr.TokenSHA256))
			if err != nil || len(b) != 32 {
				return fmt.Errorf("%s::token_sha256: want the 64-hex-digit SHA-256 of the token, got %d characters", field, len(cr.TokenSHA256))
			}
			if other, dup := seen[string(b)]; dup {
				return fmt.Errorf("%s::token_sha256: same token as %s; every client needs its own", field, other)
			}
			seen[string(b)] = n
		default:
			if _, err := bcrypt.Cost([]byte(cr.Bcrypt)); err != nil {
				return fmt.Errorf("%s::bcrypt: not a bcrypt hash (%v)", field, err)
			}
		}
	}
	if c.Session.TTL < time.Minute {
		return fmt.Errorf("session::ttl: %v is below 1m", c.Session.TTL)
	}
	if c.Session.KeyFile != "" {
		if _, err := c.sessionKey(); err != nil {
			return fmt.Errorf("session::key_file: %w", err)
		}
	}
	if c.FailedLogins.Burst < 1 {
		return fmt.Errorf("failed_logins::burst: %d is below 1", c.FailedLogins.Burst)
	}
	if c.FailedLogins.Every <= 0 {
		return fmt.Errorf("failed_logins::every: %v is not positive", c.FailedLogins.Every)
	}
	return nil
}

// sessionKey reads KeyFile. The error names the file and the problem, not
// the content.
func (c *Config) sessionKey() ([]byte, error) {
	key, err := os.ReadFile(c.Session.KeyFile)
	if err != nil {
		return nil, err
	}
	if len(key) < minKeyBytes {
		return nil, fmt.Errorf("%s has %d bytes, need at least %d (head -c 32 /dev/urandom | base64 > %s)",
			c.Session.KeyFile, len(key), minKeyBytes, c.Session.KeyFile)
	}
	return key, nil
}

// sessionKeyOrRandom is the configured key, or a fresh random one.
func (c *Config) sessionKeyOrRandom() ([]byte, error) {
	if c.Session.KeyFile != "" {
		return c.sessionKey()
	}
	key := make([]byte, minKeyBytes)
	_, err := rand.Read(key)
	return key, err
}
