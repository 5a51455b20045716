package bantayextension

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/tlstest"
	"github.com/bantay-noc/bantay/internal/webauth"
)

// secrets are the credentials of one test deployment, in the clear (as a
// client holds them) and as the collector's config stores them.
type secrets struct {
	readerToken, adminToken, readerPassword, adminPassword string
	cfg                                                    webauth.Config
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func newSecrets(t *testing.T) secrets {
	s := secrets{readerToken: randomSecret(t), adminToken: randomSecret(t),
		readerPassword: randomSecret(t), adminPassword: randomSecret(t)}
	sum := func(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }
	bc := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		require.NoError(t, err)
		return string(h)
	}
	s.cfg = webauth.DefaultConfig()
	s.cfg.Credentials = map[string]webauth.Credential{
		"grafana": {Role: webauth.RoleReader, TokenSHA256: sum(s.readerToken)},
		"ops-bot": {Role: webauth.RoleAdmin, TokenSHA256: sum(s.adminToken)},
		"noc":     {Role: webauth.RoleReader, Bcrypt: bc(s.readerPassword)},
		"oncall":  {Role: webauth.RoleAdmin, Bcrypt: bc(s.adminPassword)},
	}
	return s
}

// startWithLogs starts the extension with cfg, logging into an observer.
func startWithLogs(t *testing.T, cfg *Config) (*Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	set := extensiontest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	return ext.(*Server), logs
}

// logText is every logged message with its fields, to search for secrets.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintln(&b, e.Message, e.ContextMap())
	}
	return b.String()
}

// testConfig is the default config on a free loopback port and a fresh
// store, with the given access policy.
func testConfig(t *testing.T, access webauth.Config) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = t.TempDir()
	cfg.Access = access
	return cfg
}

// noRedirect shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type cred struct {
	name   string
	header func(*http.Request)
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func basic(user, pw string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pw) }
}

func cookie(c *http.Cookie) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(c) }
}

// login posts the form as a browser does and returns the session cookie.
func login(t *testing.T, base, user, pw string) *http.Cookie {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+webauth.LoginPath,
		strings.NewReader(url.Values{"user": {user}, "password": {pw}, "next": {"/"}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "login as %s", user)
	assert.Equal(t, "/", resp.Header.Get("Location"))
	for _, c := range resp.Cookies() {
		if c.Name == "bantay_session" {
			assert.True(t, c.HttpOnly, "HttpOnly")
			assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
			return c
		}
	}
	t.Fatalf("login set no session cookie: %v", resp.Header["Set-Cookie"])
	return nil
}

// TestAccessPolicyEveryRoute starts the extension with a policy and checks
// every route with every kind of credential, then that no secret reached
// the log or a response.
func TestAccessPolicyEveryRoute(t *testing.T) {
	sec := newSecrets(t)
	cfg := testConfig(t, sec.cfg)
	cfg.Access.FailedLogins.Burst = 1000 // every wrong password below comes from 127.0.0.1
	base := "http://" + cfg.NetAddr.Endpoint
	srv, logs := startWithLogs(t, cfg)
	require.NoError(t, srv.Ready())

	session := login(t, base, "noc", sec.readerPassword)
	adminSession := login(t, base, "oncall", sec.adminPassword)
	creds := []cred{
		{"none", func(*http.Request) {}},
		{"reader token", bearer(sec.readerToken)},
		{"reader basic", basic("noc", sec.readerPassword)},
		{"admin token", bearer(sec.adminToken)},
		{"admin basic", basic("oncall", sec.adminPassword)},
		{"wrong token", bearer(sec.readerToken + "x")},
		{"wrong password", basic("noc", sec.adminPassword)},
		{"unknown user", basic("nobody", sec.readerPassword)},
		{"cookie", cookie(session)},
		{"admin's cookie", cookie(adminSession)},
	}
	const (
		ok       = http.StatusOK
		unauth   = http.StatusUnauthorized
		forbid   = http.StatusForbidden
		toLogin  = http.StatusSeeOther
		upgraded = http.StatusSwitchingProtocols
	)
	// want[route][credential]: what each credential gets on each route.
	type route struct {
		method, path string
		want         map[string]int
	}
	all := func(code int) map[string]int {
		m := map[string]int{}
		for _, c := range creds {
			m[c.name] = code
		}
		return m
	}
	with := func(m map[string]int, kv ...any) map[string]int {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(int)
		}
		return m
	}
	read := func() map[string]int {
		return with(all(ok), "none", unauth, "wrong token", unauth, "wrong password", unauth, "unknown user", unauth)
	}
	routes := []route{
		{"GET", "/api/v1/query?query=1", read()},
		{"POST", "/api/v1/query_range", read()},
		{"GET", "/metrics", read()},
		{"GET", hub.PathSnapshot, read()},
		{"GET", "/", with(read(), "none", toLogin)},
		{"GET", hub.PathWS, with(read(), "none", unauth, "reader token", upgraded, "reader basic", upgraded,
			"admin token", upgraded, "admin basic", upgraded, "cookie", upgraded, "admin's cookie", upgraded)},
		// A session never reaches an admin route: no other site can make a
		// logged-in browser reload.
		{"POST", "/-/reload", with(all(unauth), "reader token", forbid, "reader basic", forbid,
			"admin token", ok, "admin basic", ok)},
		{"GET", "/-/healthy", all(ok)},
		{"GET", "/-/ready", all(ok)},
	}
	var bodies strings.Builder
	for _, rt := range routes {
		for _, c := range creds {
			var code int
			if rt.path == hub.PathWS {
				h := http.Header{"Origin": {base}}
				req := &http.Request{Header: h}
				c.header(req)
				ws, resp, err := websocket.DefaultDialer.Dial("ws://"+cfg.NetAddr.Endpoint+rt.path, req.Header)
				if err == nil {
					ws.Close()
				}
				require.NotNil(t, resp, "%s with %s: %v", rt.path, c.name, err)
				code = resp.StatusCode
			} else {
				var body io.Reader
				if rt.method == http.MethodPost {
					body = strings.NewReader("query=1&start=0&end=60&step=15")
				}
				req, err := http.NewRequest(rt.method, base+rt.path, body)
				require.NoError(t, err)
				if body != nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				c.header(req)
				resp, err := noRedirect.Do(req)
				require.NoError(t, err)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				bodies.Write(b)
				code = resp.StatusCode
				if code == toLogin {
					assert.Equal(t, webauth.LoginPath+"?next=%2F", resp.Header.Get("Location"))
				}
				if code == unauth {
					assert.Contains(t, resp.Header.Values("WWW-Authenticate"), `Basic realm="Bantay", charset="UTF-8"`)
				}
			}
			assert.Equal(t, rt.want[c.name], code, "%s %s with %s", rt.method, rt.path, c.name)
		}
	}

	// A logged-in browser on another site cannot open the feed.
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+cfg.NetAddr.Endpoint+hub.PathWS,
		http.Header{"Origin": {"https://evil.example"}, "Cookie": {session.String()}})
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, forbid, resp.StatusCode, "session cookie with a foreign Origin on /ws")

	// The login form itself is open, and says nothing about which users exist.
	code, page := get(t, base+webauth.LoginPath)
	assert.Equal(t, ok, code)
	assert.Contains(t, page, `name="password"`)

	_, metrics := getWith(t, base+"/metrics", bearer(sec.readerToken))
	for _, want := range []string{`reason="unknown_token"`, `reason="wrong_password"`, `reason="unknown_user"`, `reason="forbidden"`, `reason="missing"`} {
		assert.Regexp(t, `bantay_web_auth_failures_total\{`+want+`\} [1-9]`, metrics)
	}

	for name, s := range map[string]string{"reader token": sec.readerToken, "admin token": sec.adminToken,
		"reader password": sec.readerPassword, "admin password": sec.adminPassword, "session": session.Value,
		"bcrypt hash": sec.cfg.Credentials["noc"].Bcrypt} {
		assert.NotContains(t, logText(logs), s, "the %s is in the log", name)
		assert.NotContains(t, bodies.String(), s, "the %s is in a response", name)
		assert.NotContains(t, metrics, s, "the %s is in /metrics", name)
	}
}

func getWith(t *testing.T, u string, auth func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	auth(req)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestGrafanaDataSourceWithReaderCredential sends the requests Grafana's
// Prometheus data source makes (POST form queries by default, GET for
// metadata), with the Authorization header it sends for "Basic auth" and
// for a custom "Authorization: Bearer" header.
func TestGrafanaDataSourceWithReaderCredential(t *testing.T) {
	sec := newSecrets(t)
	cfg := testConfig(t, sec.cfg)
	base := "http://" + cfg.NetAddr.Endpoint
	startWithLogs(t, cfg)

	now := time.Now().Unix()
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	ts := func(d int64) string { return time.Unix(now+d, 0).UTC().Format(time.RFC3339) }
	requests := []struct{ method, path, body string }{
		{"GET", "/api/v1/status/buildinfo", ""},
		{"POST", "/api/v1/query", form("query", "1+1", "time", ts(0))},
		{"POST", "/api/v1/query_range", form("query", "up", "start", ts(-3600), "end", ts(0), "step", "15")},
		{"GET", "/api/v1/labels?" + form("start", ts(-3600), "end", ts(0)), ""},
		{"GET", "/api/v1/series?" + form("match[]", `{__name__=~".+"}`, "start", ts(-3600), "end", ts(0)), ""},
		{"GET", "/api/v1/label/__name__/values?" + form("start", ts(-3600), "end", ts(0)), ""},
	}
	for name, auth := range map[string]string{
		"basic auth":    "Basic " + basicValue("noc", sec.readerPassword),
		"custom header": "Bearer " + sec.readerToken,
	} {
		for _, rq := range requests {
			var body io.Reader
			if rq.body != "" {
				body = strings.NewReader(rq.body)
			}
			req, err := http.NewRequest(rq.method, base+rq.path, body)
			require.NoError(t, err)
			req.Header.Set("Authorization", auth)
			req.Header.Set("User-Agent", "Grafana/12.2.0")
			req.Header.Set("Accept", "application/json, text/plain, */*")
			req.Header.Set("X-Grafana-Org-Id", "1")
			if body != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%s %s with %s: %s", rq.method, rq.path, name, b)
			assert.Contains(t, string(b), `"status":"success"`, "%s %s with %s", rq.method, rq.path, name)
		}
	}
}

func basicValue(user, pw string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pw)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestWarnsWhenOpen: without a policy everything stays open, and the start
// says so.
func TestWarnsWhenOpen(t *testing.T) {
	cfg := testConfig(t, webauth.DefaultConfig())
	_, logs := startWithLogs(t, cfg)
	assert.Contains(t, logText(logs), "no access policy")
	resp, err := http.Post("http://"+cfg.NetAddr.Endpoint+"/-/reload", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "open as before")
}

// TestTLSListener: the listener serves TLS, picks up a renewed certificate
// without a restart, calls itself https, and marks the session cookie
// Secure.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	leaf := tlstest.Leaf{CommonName: "bantay", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	certFile, keyFile, first := ca.Issue(t, dir, "bantay", leaf)
	sec := newSecrets(t)
	cfg := testConfig(t, sec.cfg)
	tc := configtls.NewDefaultServerConfig()
	tc.CertFile, tc.KeyFile = certFile, keyFile
	// Any handshake after the files changed reloads them: the test need not wait.
	tc.ReloadInterval = time.Nanosecond
	cfg.TLS = configoptional.Some(tc)
	base := "https://" + cfg.NetAddr.Endpoint
	srv, logs := startWithLogs(t, cfg)
	assert.NotContains(t, logText(logs), "plain HTTP")

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}},
		CheckRedirect: noRedirect.CheckRedirect}
	served := func() *x509.Certificate {
		resp, err := client.Get(base + "/-/healthy")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return resp.TLS.PeerCertificates[0]
	}
	assert.Equal(t, first.SerialNumber, served().SerialNumber)
	_, _, second := ca.Issue(t, dir, "bantay", leaf)
	assert.Equal(t, second.SerialNumber, served().SerialNumber, "renewed certificate served without a restart")

	assert.Equal(t, "https", srv.externalURL(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}).Scheme)
	resp, err := client.PostForm(base+webauth.LoginPath, url.Values{"user": {"noc"}, "password": {sec.readerPassword}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.NotEmpty(t, resp.Cookies())
	assert.True(t, resp.Cookies()[0].Secure, "session cookie over TLS is Secure")
}
