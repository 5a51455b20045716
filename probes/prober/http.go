package prober

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
)

// maxBody bounds how much of a response body is read (and timed): enough
// for a health page, not a way to download a file every 15 s.
const maxBody = 1 << 20

// HTTP measures one HTTP(S) GET on a fresh connection each time (what a
// user's first request costs) and divides its time into phases with
// net/http/httptrace, as blackbox_exporter does: dns, connect, tls,
// processing (request written until the first response byte, i.e. time to
// first byte on a connection that is already up) and transfer (reading the
// body). Redirects are not followed; a 3xx is an answer, so a redirect
// loop cannot trap the probe.
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

// Probe implements Prober. A failed request returns no phases: a phase
// that did not complete has no duration to report.
func (p *HTTP) Probe(ctx context.Context) (Result, error) {
	var tr httpTrace
	ctx = httptrace.WithClientTrace(ctx, tr.hooks())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("User-Agent", "bantay-probe")
	tr.start = time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{}, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	end := time.Now()
	if err != nil {
		return Result{}, err
	}
	res := Result{RTT: end.Sub(tr.start), StatusCode: resp.StatusCode, Phases: tr.phases(end)}
	if resp.TLS != nil {
		for _, c := range resp.TLS.PeerCertificates {
			if res.CertNotAfter.IsZero() || c.NotAfter.Before(res.CertNotAfter) {
				res.CertNotAfter = c.NotAfter
			}
		}
	}
	if !p.statusOK(resp.StatusCode) {
		return Result{StatusCode: resp.StatusCode}, &StatusError{Got: resp.StatusCode, Want: p.expectStatus}
	}
	return res, nil
}

func (p *HTTP) statusOK(code int) bool {
	if p.expectStatus != 0 {
		return code == p.expectStatus
	}
	return code >= 200 && code < 400
}

// httpTrace records the instants between phases. The transport may call
// the hooks from its dialing goroutines, hence the lock.
type httpTrace struct {
	mu                                              sync.Mutex
	start, dnsDone, connectDone, tlsDone, firstByte time.Time
}

func (t *httpTrace) set(at *time.Time) {
	now := time.Now()
	t.mu.Lock()
	*at = now
	t.mu.Unlock()
}

func (t *httpTrace) hooks() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSDone: func(httptrace.DNSDoneInfo) { t.set(&t.dnsDone) },
		// With several addresses the dialer may race connections; the
		// last one to connect is the one the request uses.
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				t.set(&t.connectDone)
			}
		},
		TLSHandshakeDone:     func(tls.ConnectionState, error) { t.set(&t.tlsDone) },
		GotFirstResponseByte: func() { t.set(&t.firstByte) },
	}
}

// phases cuts [start, end] at the recorded instants, so the phases add up
// to the total; a phase that did not happen (dns for an IP address, tls
// for http) is left out rather than reported as zero.
func (t *httpTrace) phases(end time.Time) []Phase {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Phase
	prev := t.start
	for _, b := range []struct {
		name string
		at   time.Time
	}{
		{PhaseDNS, t.dnsDone}, {PhaseConnect, t.connectDone}, {PhaseTLS, t.tlsDone},
		{PhaseProcessing, t.firstByte}, {PhaseTransfer, end},
	} {
		if b.at.IsZero() {
			continue
		}
		out = append(out, Phase{Name: b.name, Duration: b.at.Sub(prev)})
		prev = b.at
	}
	return out
}
