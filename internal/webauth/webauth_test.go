package webauth

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// rightHash is the hash of "right", one for all tests: a new hash (salt)
// is a new password, which ends sessions.
var rightHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	return h
})

func testPolicy(t *testing.T, mutate func(*Config)) (*Policy, *prometheus.Registry) {
	t.Helper()
	h := rightHash()
	sum := sha256.Sum256([]byte("tok"))
	cfg := DefaultConfig()
	cfg.Credentials = map[string]Credential{
		"noc":     {Role: RoleReader, Bcrypt: string(h)},
		"grafana": {Role: RoleReader, TokenSHA256: hex.EncodeToString(sum[:])},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	require.NoError(t, cfg.Validate())
	reg := prometheus.NewRegistry()
	p, err := New(cfg, Options{Registerer: reg})
	require.NoError(t, err)
	return p, reg
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

func do(h http.Handler, from string, set func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
	r.RemoteAddr = from
	if set != nil {
		set(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cr   Credential
		want string
	}{
		{"no secret", Credential{Role: RoleReader}, "credentials::x: set exactly one of token_sha256 and bcrypt"},
		{"both", Credential{Role: RoleReader, TokenSHA256: strings.Repeat("a", 64), Bcrypt: "$2a$"}, "set exactly one"},
		{"short hash", Credential{Role: RoleReader, TokenSHA256: "abc"}, "credentials::x::token_sha256: want the 64-hex-digit SHA-256"},
		{"not bcrypt", Credential{Role: RoleAdmin, Bcrypt: "hunter2"}, "credentials::x::bcrypt: not a bcrypt hash"},
		{"role", Credential{Role: "", TokenSHA256: strings.Repeat("a", 64)}, `credentials::x::role: "" is not "reader" or "admin"`},
	} {
		cfg := DefaultConfig()
		cfg.Credentials = map[string]Credential{"x": tc.cr}
		err := cfg.Validate()
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
		assert.NotContains(t, err.Error(), "hunter2", "a secret is never quoted")
	}
	cfg := DefaultConfig()
	cfg.Credentials = map[string]Credential{"a": {Role: RoleReader, TokenSHA256: strings.Repeat("a", 64)},
		"b": {Role: RoleAdmin, TokenSHA256: strings.Repeat("a", 64)}}
	assert.ErrorContains(t, cfg.Validate(), "credentials::b::token_sha256: same token as a")

	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(key, []byte("short"), 0o600))
	cfg = DefaultConfig()
	cfg.Session.KeyFile = key
	assert.ErrorContains(t, cfg.Validate(), "session::key_file: "+key+" has 5 bytes, need at least 32")
	assert.NotContains(t, cfg.Validate().Error(), "short")
}

// TestFailedPasswordsAreLimitedPerAddress: after burst wrong passwords an
// address is refused (429, Retry-After) before its password is checked,
// even a right one; another address is unaffected; tokens are not limited.
func TestFailedPasswordsAreLimitedPerAddress(t *testing.T) {
	p, reg := testPolicy(t, func(c *Config) { c.FailedLogins = LimitConfig{Burst: 3, Every: time.Hour} })
	h := p.Require(Read, okHandler)
	wrong := func(r *http.Request) { r.SetBasicAuth("noc", "wrong") }
	right := func(r *http.Request) { r.SetBasicAuth("noc", "right") }
	for range 5 {
		assert.Equal(t, http.StatusOK, do(h, "192.0.2.1:1000", right).Code, "right passwords take nothing")
	}
	for i := range 3 {
		assert.Equal(t, http.StatusUnauthorized, do(h, "192.0.2.1:1000", wrong).Code, "failure %d", i+1)
	}
	w := do(h, "192.0.2.1:1001", right)
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "3600", w.Header().Get("Retry-After"))
	assert.Equal(t, http.StatusOK, do(h, "192.0.2.2:1000", right).Code, "another address")
	assert.Equal(t, http.StatusOK, do(h, "192.0.2.1:1000", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer tok")
	}).Code, "a token from the limited address")
	assert.Equal(t, 3.0, testutil.ToFloat64(p.failures.WithLabelValues(reasonWrongPassword)))
	assert.Equal(t, 1.0, testutil.ToFloat64(p.failures.WithLabelValues(reasonRateLimited)))
	n, err := testutil.GatherAndCount(reg, "bantay_web_auth_failures_total")
	require.NoError(t, err)
	assert.Equal(t, len(reasons), n, "every reason exported from the start")
}

// TestFailLimiterIsBounded: a flood from many addresses never grows the
// map past its bound; refilled buckets make room, the rest share one.
func TestFailLimiterIsBounded(t *testing.T) {
	l := newFailLimiter(LimitConfig{Burst: 1, Every: time.Hour}, 4)
	now := time.Now()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	for i := range 10 {
		if done, _ := l.begin(addr(i), now); done != nil {
			done(true)
		}
	}
	assert.Len(t, l.by, 4)
	_, wait := l.begin(addr(200), now)
	assert.Positive(t, wait, "overflow addresses share a spent bucket")
	done, wait := l.begin(addr(201), now.Add(2*time.Hour))
	assert.NotNil(t, done, "refilled buckets were forgotten for a new one")
	assert.Zero(t, wait)
	assert.LessOrEqual(t, len(l.by), 4)
}

// TestConcurrentGuessesAreCounted: checks in flight hold their share of the
// budget, so parallel guesses cannot all start before the first one fails;
// a right password gives its share back.
func TestConcurrentGuessesAreCounted(t *testing.T) {
	l := newFailLimiter(LimitConfig{Burst: 2, Every: time.Hour}, 10)
	a := netip.MustParseAddr("192.0.2.7")
	now := time.Now()
	first, _ := l.begin(a, now)
	second, _ := l.begin(a, now)
	require.NotNil(t, first)
	require.NotNil(t, second)
	third, wait := l.begin(a, now)
	assert.Nil(t, third, "a third check while two are in flight")
	assert.Positive(t, wait)
	first(false) // right password
	again, _ := l.begin(a, now)
	assert.NotNil(t, again, "the right password's share came back")
}

func TestSessions(t *testing.T) {
	p, _ := testPolicy(t, nil)
	u := p.users["noc"]
	now := time.Now()
	c, err := p.sessions.issue(u, now)
	require.NoError(t, err)
	id, reason := p.sessions.verify(c.Value)
	assert.Empty(t, reason)
	assert.Equal(t, identity{name: "noc", role: RoleReader}, id)

	old, err := p.sessions.issue(u, now.Add(-13*time.Hour))
	require.NoError(t, err)
	_, reason = p.sessions.verify(old.Value)
	assert.Equal(t, reasonExpired, reason)

	_, reason = p.sessions.verify(c.Value[:len(c.Value)-2] + "xx")
	assert.Equal(t, reasonBadSession, reason, "tampered signature")

	// Another start with another (random) key: its sessions do not verify here.
	other, _ := testPolicy(t, nil)
	oc, err := other.sessions.issue(other.users["noc"], now)
	require.NoError(t, err)
	_, reason = p.sessions.verify(oc.Value)
	assert.Equal(t, reasonBadSession, reason)

	// A new password ends the old sessions.
	changed, _ := testPolicy(t, func(cfg *Config) {
		h, err := bcrypt.GenerateFromPassword([]byte("new"), bcrypt.MinCost)
		require.NoError(t, err)
		cfg.Credentials["noc"] = Credential{Role: RoleReader, Bcrypt: string(h)}
	})
	_, reason = changed.sessions.verify(c.Value)
	assert.Equal(t, reasonBadSession, reason)
}

// TestSessionKeyFileSurvivesRestart: with key_file, a session issued
// before a restart is still valid after it.
func TestSessionKeyFileSurvivesRestart(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(key, []byte(strings.Repeat("k", 44)), 0o600))
	withKey := func(c *Config) { c.Session.KeyFile = key }
	a, _ := testPolicy(t, withKey)
	b, _ := testPolicy(t, withKey)
	c, err := a.sessions.issue(a.users["noc"], time.Now())
	require.NoError(t, err)
	_, reason := b.sessions.verify(c.Value)
	assert.Empty(t, reason)
}

func TestLoginRedirectStaysLocal(t *testing.T) {
	for in, want := range map[string]string{"/": "/", "/?carrier=Globe": "/?carrier=Globe", "": "/",
		"https://evil.example/": "/", "//evil.example/": "/", `/\evil.example`: "/"} {
		assert.Equal(t, want, localPath(in), in)
	}
}

// TestLoginFromAnotherSiteIsRefused: the form's POST carries net/http's
// cross-origin protection.
func TestLoginFromAnotherSiteIsRefused(t *testing.T) {
	p, _ := testPolicy(t, nil)
	mux := http.NewServeMux()
	p.Register(mux)
	r := httptest.NewRequest(http.MethodPost, LoginPath, strings.NewReader("user=noc&password=right"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Empty(t, w.Result().Cookies())
}

func TestOffPolicyIsOpen(t *testing.T) {
	p, err := New(DefaultConfig(), Options{Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	assert.False(t, p.Enabled())
	assert.Equal(t, http.StatusOK, do(p.Require(Admin, okHandler), "192.0.2.1:1", nil).Code)
}

// TestLoginForm: a wrong password shows the form again (401) with no
// cookie and without saying whether the user exists; the right one sets
// the session and goes back to next; an address over its budget gets 429.
func TestLoginForm(t *testing.T) {
	p, _ := testPolicy(t, func(c *Config) { c.FailedLogins = LimitConfig{Burst: 2, Every: time.Hour} })
	mux := http.NewServeMux()
	p.Register(mux)
	post := func(user, pw string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, LoginPath, strings.NewReader("user="+user+"&password="+pw+"&next=%2F%3Fwall%3D1"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = "192.0.2.9:4000"
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	for _, user := range []string{"noc", "nobody"} {
		w := post(user, "wrong")
		assert.Equal(t, http.StatusUnauthorized, w.Code, user)
		assert.Contains(t, w.Body.String(), "Wrong user name or password.", user)
		assert.Contains(t, w.Body.String(), `value="/?wall=1"`, "the form keeps where to go back to")
		assert.Empty(t, w.Result().Cookies(), user)
	}
	w := post("noc", "right")
	assert.Equal(t, http.StatusTooManyRequests, w.Code, "two failures used the budget")
	assert.Equal(t, "3600", w.Header().Get("Retry-After"))

	p, _ = testPolicy(t, nil)
	mux = http.NewServeMux()
	p.Register(mux)
	w = post("noc", "right")
	assert.Equal(t, http.StatusSeeOther, w.Code)
	assert.Equal(t, "/?wall=1", w.Header().Get("Location"))
	require.Len(t, w.Result().Cookies(), 1)
	c := w.Result().Cookies()[0]
	assert.Equal(t, cookieName, c.Name)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	assert.Equal(t, int((12 * time.Hour).Seconds()), c.MaxAge)
	id, reason := p.sessions.verify(c.Value)
	assert.Empty(t, reason)
	assert.Equal(t, "noc", id.name)
}
