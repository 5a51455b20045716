package webauth

import (
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Paths the policy serves itself (only when enabled).
const (
	LoginPath  = "/login"
	LogoutPath = "/logout"
)

// cookieName is the session cookie. SameSite=Lax rather than Strict: a NOC
// engineer following a link to the wall from chat arrives logged in, while
// other sites' scripts, frames and websockets still do not carry it; and a
// session can never reach an Admin route, so it cannot be used to change
// state from elsewhere.
const cookieName = "bantay_session"

// sessions issues and verifies session cookies: HS256 JWTs (RFC 7519)
// carrying the user and an expiry, signed with a key derived from the
// session key and the user's bcrypt hash, so a session ends when its user
// is removed or their password changes.
type sessions struct {
	ttl    time.Duration
	secure bool
	users  map[string]*user
}

var jwtParser = jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
	jwt.WithExpirationRequired(), jwt.WithIssuedAt())

func (s sessions) issue(u *user, now time.Time) (*http.Cookie, error) {
	v, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   u.name,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
	}).SignedString(u.sessionKey)
	if err != nil {
		return nil, err
	}
	return s.cookie(v, int(s.ttl.Seconds())), nil
}

func (s sessions) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
}

// verify returns the session's user, or the refusal reason.
func (s sessions) verify(v string) (identity, string) {
	var claims jwt.RegisteredClaims
	var u *user
	_, err := jwtParser.ParseWithClaims(v, &claims, func(t *jwt.Token) (any, error) {
		sub, err := t.Claims.GetSubject()
		if err != nil {
			return nil, err
		}
		if u = s.users[sub]; u == nil {
			return nil, errors.New("no such user")
		}
		return u.sessionKey, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return identity{}, reasonExpired
	case err != nil:
		return identity{}, reasonBadSession
	}
	return identity{name: u.name, role: u.role}, ""
}

// Register adds the login form and logout to mux (nothing when the policy
// is off). Both POSTs are refused from other origins (net/http's
// CrossOriginProtection), so no other site can log a browser in or out.
func (p *Policy) Register(mux *http.ServeMux) {
	if !p.enabled {
		return
	}
	mux.HandleFunc("GET "+LoginPath, func(w http.ResponseWriter, r *http.Request) {
		p.loginPage(w, http.StatusOK, r.URL.Query().Get("next"), "")
	})
	mux.Handle("POST "+LoginPath, p.origins.Handler(http.HandlerFunc(p.login)))
	mux.Handle("POST "+LogoutPath, p.origins.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, p.sessions.cookie("", -1))
		http.Redirect(w, r, LoginPath, http.StatusSeeOther)
	})))
}

// maxLoginForm bounds the login form's body.
const maxLoginForm = 4 << 10

func (p *Policy) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		p.loginPage(w, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	next := r.PostForm.Get("next")
	id, ref := p.checkPassword(r, r.PostForm.Get("user"), r.PostForm.Get("password"))
	if ref != nil {
		if ref.reason == reasonRateLimited {
			w.Header().Set("Retry-After", retryAfter(ref.wait))
			p.loginPage(w, http.StatusTooManyRequests, next, "Too many failed logins from this address; try again later.")
			return
		}
		p.loginPage(w, http.StatusUnauthorized, next, "Wrong user name or password.")
		return
	}
	c, err := p.sessions.issue(p.users[id.name], time.Now())
	if err != nil {
		http.Error(w, "could not issue a session", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, c)
	http.Redirect(w, r, localPath(next), http.StatusSeeOther)
}

// localPath keeps a redirect on this site: only an absolute path, never
// "//host" or "/\host", which browsers read as another site.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// loginCSP: the form posts only back here, and nothing else loads.
const loginCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bantay — log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;background:#111;color:#eee;display:grid;place-items:center;height:100vh;margin:0}
form{display:grid;gap:.6em;min-width:16em}input,button{font:inherit;padding:.4em}p{color:#f88}</style></head>
<body><form method="post" action="/login"><h1>Bantay</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<label>User <input name="user" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{{.Next}}">
<button type="submit">Log in</button></form></body></html>
`))

func (p *Policy) loginPage(w http.ResponseWriter, status int, next, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", loginCSP)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginTemplate.Execute(w, struct{ Next, Error string }{localPath(next), msg})
}
