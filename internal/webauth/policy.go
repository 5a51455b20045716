// Package webauth is the access policy of the bantay extension's HTTP
// listener: which route needs which credential. The Prometheus API,
// /metrics and the heatmap JSON need a reader; /-/reload needs an admin;
// the page and its websocket take a browser session that a login form sets
// (a signed, expiring cookie), since a browser cannot send a bearer header
// on a websocket; health and readiness stay open for load balancers.
// Credentials are bearer tokens (kept as SHA-256 hashes, like probeauth's)
// and basic-auth users (bcrypt); wrong passwords are counted and limited
// per client address. docs/security.md has the operator's view.
package webauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/bantay-noc/bantay/internal/logthrottle"
)

// Access is what a route requires. A route not wrapped by Require needs
// nothing (/-/healthy, /-/ready).
type Access int

const (
	// Page routes (the page, /ws) take a session cookie or any credential;
	// a browser without one is sent to the login form.
	Page Access = iota + 1
	// Read routes (Prometheus API, /metrics, heatmap JSON) take any
	// credential or a session.
	Read
	// Admin routes (/-/reload) take an admin credential in the
	// Authorization header. A session is never enough, so a page on another
	// site cannot make a logged-in browser change state.
	Admin
)

// Reasons a request is refused: the reason label of
// bantay_web_auth_failures_total.
const (
	reasonMissing       = "missing"         // no credential at all
	reasonMalformed     = "malformed"       // an Authorization header that is neither Bearer nor Basic
	reasonUnknownToken  = "unknown_token"   // a bearer token that is no one's
	reasonUnknownUser   = "unknown_user"    // basic auth or login with a user that does not exist
	reasonWrongPassword = "wrong_password"  // a known user, the wrong password
	reasonRateLimited   = "rate_limited"    // the address has used up its failed-login budget
	reasonBadSession    = "bad_session"     // a session cookie that does not verify
	reasonExpired       = "expired_session" // a session cookie past its expiry
	reasonForbidden     = "forbidden"       // a valid identity without the role the route needs
)

// refusalText is what the client is told: never which users exist.
var refusalText = map[string]string{
	reasonMissing:       "authentication required: send Authorization: Bearer <token> or Basic, or log in at " + LoginPath,
	reasonMalformed:     "the Authorization header is neither Bearer nor Basic",
	reasonUnknownToken:  "the bearer token is not recognised",
	reasonUnknownUser:   "wrong user name or password",
	reasonWrongPassword: "wrong user name or password",
	reasonBadSession:    "the session is not valid; log in again at " + LoginPath,
	reasonExpired:       "the session has expired; log in again at " + LoginPath,
}

var reasons = []string{reasonMissing, reasonMalformed, reasonUnknownToken, reasonUnknownUser,
	reasonWrongPassword, reasonRateLimited, reasonBadSession, reasonExpired, reasonForbidden}

// Options are what the policy takes from the listener it guards.
type Options struct {
	// Secure marks the session cookie Secure: set it when browsers reach the
	// listener over https (its own TLS, or a TLS-terminating proxy).
	Secure     bool
	Registerer prometheus.Registerer
	Logger     *zap.Logger
}

// Policy decides every request. The zero-credential policy lets all through.
type Policy struct {
	enabled  bool
	tokens   []token
	users    map[string]*user
	sessions sessions
	limiter  *failLimiter
	dummy    func() []byte // a bcrypt hash to check unknown users against, so they take as long
	cacheKey []byte
	failures *prometheus.CounterVec
	warn     *logthrottle.Logger
	origins  *http.CrossOriginProtection
}

type token struct {
	digest [32]byte
	name   string
	role   string
}

type user struct {
	name       string
	role       string
	hash       []byte
	sessionKey []byte // signs this user's sessions; derived from the hash, so a new password ends them

	mu    sync.Mutex
	okMAC []byte // HMAC of the last password that verified, so Grafana's every request is not a bcrypt
}

// identity is who a request is.
type identity struct {
	name string
	role string
}

// refusal is why a request is not let through.
type refusal struct {
	reason string
	wait   time.Duration // for rate_limited
}

// New builds the policy from a validated Config.
func New(cfg Config, opts Options) (*Policy, error) {
	p := &Policy{enabled: cfg.Enabled(), users: map[string]*user{}, origins: http.NewCrossOriginProtection()}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	p.warn = logthrottle.New(opts.Logger, time.Minute)
	p.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bantay_web_auth_failures_total",
		Help: "Requests to the bantay listener refused by its access policy, by reason.",
	}, []string{"reason"})
	for _, r := range reasons {
		p.failures.WithLabelValues(r)
	}
	if opts.Registerer != nil && p.enabled {
		if err := opts.Registerer.Register(p.failures); err != nil {
			return nil, err
		}
	}
	if !p.enabled {
		return p, nil
	}
	key, err := cfg.sessionKeyOrRandom()
	if err != nil {
		return nil, err
	}
	p.cacheKey = make([]byte, 32)
	_, _ = rand.Read(p.cacheKey)
	for name, c := range cfg.Credentials {
		if c.TokenSHA256 != "" {
			b, err := hex.DecodeString(strings.TrimSpace(c.TokenSHA256))
			if err != nil || len(b) != 32 {
				return nil, cfg.Validate()
			}
			p.tokens = append(p.tokens, token{digest: [32]byte(b), name: name, role: c.Role})
			continue
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte("bantay session\x00" + name + "\x00" + c.Bcrypt))
		p.users[name] = &user{name: name, role: c.Role, hash: []byte(c.Bcrypt), sessionKey: m.Sum(nil)}
	}
	// The dummy costs what the configured hashes cost, so an unknown user
	// takes as long as a wrong password.
	cost := bcrypt.MinCost
	for _, u := range p.users {
		c, _ := bcrypt.Cost(u.hash)
		cost = max(cost, c)
	}
	p.dummy = sync.OnceValue(func() []byte {
		pw := make([]byte, 16)
		_, _ = rand.Read(pw)
		h, _ := bcrypt.GenerateFromPassword(pw, cost)
		return h
	})
	p.sessions = sessions{ttl: cfg.Session.TTL, secure: opts.Secure, users: p.users}
	p.limiter = newFailLimiter(cfg.FailedLogins, maxTrackedAddrs)
	return p, nil
}

// Enabled reports whether any credential is configured (else all is open).
func (p *Policy) Enabled() bool { return p.enabled }

// Require guards h with what a route needs.
func (p *Policy) Require(a Access, h http.Handler) http.Handler {
	if !p.enabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ref := p.authenticate(r, a != Admin) // a session never reaches an Admin route
		if ref != nil {
			p.refuse(w, r, a, ref)
			return
		}
		if a == Admin && id.role != RoleAdmin {
			p.failures.WithLabelValues(reasonForbidden).Inc()
			http.Error(w, "forbidden: this needs an admin credential in the Authorization header", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authenticate finds who the request is: the Authorization header first,
// then, unless the route is Admin, the session cookie.
func (p *Policy) authenticate(r *http.Request, sessionOK bool) (identity, *refusal) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		switch {
		case strings.EqualFold(scheme, "Bearer"):
			return p.checkToken(strings.TrimSpace(rest))
		case strings.EqualFold(scheme, "Basic"):
			name, pw, ok := r.BasicAuth()
			if !ok {
				return identity{}, p.fail(reasonMalformed)
			}
			return p.checkPassword(r, name, pw)
		default:
			return identity{}, p.fail(reasonMalformed)
		}
	}
	if c, err := r.Cookie(cookieName); err == nil && sessionOK {
		id, reason := p.sessions.verify(c.Value)
		if reason != "" {
			return identity{}, p.fail(reason)
		}
		return id, nil
	}
	return identity{}, p.fail(reasonMissing)
}

func (p *Policy) fail(reason string) *refusal {
	p.failures.WithLabelValues(reason).Inc()
	return &refusal{reason: reason}
}

// checkToken compares the token's hash with every configured one in
// constant time, so timing says nothing about which hash is near.
func (p *Policy) checkToken(tok string) (identity, *refusal) {
	d := sha256.Sum256([]byte(tok))
	var hit *token
	for i := range p.tokens {
		if subtle.ConstantTimeCompare(d[:], p.tokens[i].digest[:]) == 1 {
			hit = &p.tokens[i]
		}
	}
	if hit == nil || tok == "" {
		return identity{}, p.fail(reasonUnknownToken)
	}
	return identity{name: hit.name, role: hit.role}, nil
}

// checkPassword verifies a basic-auth or login-form password, unless the
// client's address has used up its failure budget: then nothing is
// checked (bcrypt is deliberately slow; a flood of guesses must not cost
// the collector its CPU).
func (p *Policy) checkPassword(r *http.Request, name, pw string) (identity, *refusal) {
	addr := clientAddr(r)
	done, wait := p.limiter.begin(addr, time.Now())
	if done == nil {
		p.failures.WithLabelValues(reasonRateLimited).Inc()
		p.warn.Warn(reasonRateLimited, "refusing password checks from an address that failed too often (failed_logins)",
			zap.String("address", addr.String()))
		return identity{}, &refusal{reason: reasonRateLimited, wait: wait}
	}
	u := p.users[name]
	if u == nil {
		_ = bcrypt.CompareHashAndPassword(p.dummy(), []byte(pw))
		done(true)
		return identity{}, p.fail(reasonUnknownUser)
	}
	if !u.verify(p.cacheKey, pw) {
		done(true)
		return identity{}, p.fail(reasonWrongPassword)
	}
	done(false)
	return identity{name: u.name, role: u.role}, nil
}

// verify checks pw with bcrypt, or against the HMAC of the last password
// that verified (in constant time).
func (u *user) verify(cacheKey []byte, pw string) bool {
	m := hmac.New(sha256.New, cacheKey)
	m.Write([]byte(pw))
	mac := m.Sum(nil)
	u.mu.Lock()
	cached := u.okMAC != nil && hmac.Equal(mac, u.okMAC)
	u.mu.Unlock()
	if cached {
		return true
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(pw)) != nil {
		return false
	}
	u.mu.Lock()
	u.okMAC = mac
	u.mu.Unlock()
	return true
}

// refuse answers a request without the credential its route needs. A
// browser asking for the page is sent to the login form; everything else
// gets 401 with the challenges Grafana, curl and browsers understand.
func (p *Policy) refuse(w http.ResponseWriter, r *http.Request, a Access, ref *refusal) {
	switch {
	case ref.reason == reasonRateLimited:
		w.Header().Set("Retry-After", retryAfter(ref.wait))
		http.Error(w, "too many failed logins from this address; try again later", http.StatusTooManyRequests)
	case a == Page && r.Header.Get("Authorization") == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		!strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		http.Redirect(w, r, LoginPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	default:
		w.Header().Add("WWW-Authenticate", `Basic realm="Bantay", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="Bantay"`)
		http.Error(w, refusalText[ref.reason], http.StatusUnauthorized)
	}
}

// retryAfter is a Retry-After value in whole seconds, rounded up.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(int((wait + time.Second - 1) / time.Second))
}
