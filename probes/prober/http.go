package prober

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
)

// maxBody bounds how much of a response body is read (and timed): enough
// for a health page, not a way to download a file every 15 s.
const maxBody = 1 << 20

// HTTP measures the total time of one HTTP(S) GET: connect, TLS, request,
// and reading the body, on a fresh connection each time (what a user's
// first request costs). Redirects are not followed; a 3xx is an answer.
type HTTP struct {
	url          string
	expectStatus int
	client       *http.Client
}

// NewHTTP returns a prober for url. expectStatus 0 accepts any 2xx or 3xx.
func NewHTTP(url string, expectStatus int, insecureSkipVerify bool, opts Options) *HTTP {
	transport := &http.Transport{
		// Probes measure the direct path; an environment proxy would
		// measure the proxy instead.
		Proxy:             nil,
		DialContext:       opts.dialer("tcp").DialContext,
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: insecureSkipVerify}, //nolint:gosec // opt-in per target for self-signed internal servers
		ForceAttemptHTTP2: true,
	}
	return &HTTP{
		url:          url,
		expectStatus: expectStatus,
		client: &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Method implements Prober.
func (*HTTP) Method() string { return config.MethodHTTP }

// Probe implements Prober.
func (p *HTTP) Probe(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "bantay-probe")
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	rtt := time.Since(start)
	if err != nil {
		return 0, err
	}
	if !p.statusOK(resp.StatusCode) {
		return 0, &StatusError{Got: resp.StatusCode, Want: p.expectStatus}
	}
	return rtt, nil
}

func (p *HTTP) statusOK(code int) bool {
	if p.expectStatus != 0 {
		return code == p.expectStatus
	}
	return code >= 200 && code < 400
}
