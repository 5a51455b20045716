package prober

import (
	"context"
	"crypto/tls"
	"io"
	"net"
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
	dialer := opts.dialer("tcp")
	transport := &http.Transport{
		// Probes measure the direct path; an environment proxy would
		// measure the proxy instead.
		Proxy: nil,
		// Each request dials afresh (no keep-alives) with the request's
		// context, so the probe that asked learns which connection is its
		// own and can read the kernel's times of it.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn = stampTCP(conn)
			if tr, ok := ctx.Value(traceKey{}).(*httpTrace); ok {
				tr.dialed(conn)
			}
			return conn, nil
		},
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
	tr := &httpTrace{}
	ctx = httptrace.WithClientTrace(context.WithValue(ctx, traceKey{}, tr), tr.hooks())
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
	tr.mark(&tr.endMark)
	resp.Body.Close()
	end := time.Now()
	if err != nil {
		return Result{}, err
	}
	phases, ok := tr.kernelPhases(end)
	if !ok {
		phases = tr.phases(end)
	}
	res := Result{StatusCode: resp.StatusCode, Phases: phases}
	for _, ph := range phases {
		res.RTT += ph.Duration
	}
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

// traceKey is the request context's key of its probe's *httpTrace.
type traceKey struct{}

// kernelConn is a connection that knows the kernel's times of its traffic
// (stampedTCP, on Linux).
type kernelConn interface {
	// handshakeRTT is TCP_INFO's handshake RTT.
	handshakeRTT() time.Duration
	// mark is what the connection has seen so far.
	mark() connMark
	// sentAt is the kernel's transmit time of write i (from 0), zero
	// when it has none.
	sentAt(i int) time.Time
}

// connMark is a connection's writes so far and the kernel's receive times
// of the first and the last segment its last read returned.
type connMark struct {
	writes              int
	readFirst, lastRead time.Time
}

// httpTrace records the instants between phases: the clock at each hook,
// and, on a kernelConn, what the connection had seen at the hooks that
// end a phase. The transport may call the hooks from its dialing and
// reading goroutines, hence the lock.
type httpTrace struct {
	mu                                              sync.Mutex
	start, dnsDone, connectDone, tlsDone, firstByte time.Time
	conn                                            net.Conn
	tlsMark, firstByteMark, endMark                 connMark
}

func (t *httpTrace) dialed(conn net.Conn) {
	t.mu.Lock()
	t.conn = conn
	t.mu.Unlock()
}

// mark records into m what the probe's connection has seen so far.
func (t *httpTrace) mark(m *connMark) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if kc, ok := t.conn.(kernelConn); ok {
		*m = kc.mark()
	}
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
		TLSHandshakeDone: func(tls.ConnectionState, error) {
			t.set(&t.tlsDone)
			t.mark(&t.tlsMark)
		},
		GotFirstResponseByte: func() {
			t.set(&t.firstByte)
			t.mark(&t.firstByteMark)
		},
	}
}

// kernelPhases are the phases at the kernel's times of the connection's
// segments, where it gave them: connect is the handshake (TCP_INFO), tls
// the ClientHello's transmission to the arrival of the last segment the
// handshake read, processing the request's transmission to the arrival of
// the segment with the response's first byte, transfer that to the
// arrival of the body's last. The probe's own work between them (building the ClientHello,
// checking the server's certificate, writing the request), and its wait
// to be scheduled at each end, are left out, as the icmp prober leaves
// out its send path: they are the probe box's, not the path's or the
// server's (0.3–1 ms on a busy box, measured in internal/harness/pingpeer).
// dns stays the clock's (the resolver's socket is not the probe's). False
// when a time is missing or the phases do not fit inside the clock's
// total, so that a wall-clock step falls back to the clock's phases.
func (t *httpTrace) kernelPhases(end time.Time) ([]Phase, bool) {
	t.mu.Lock()
	kc, ok := t.conn.(kernelConn)
	tlsDone, dnsDone, start := t.tlsDone, t.dnsDone, t.start
	tlsMark, firstByteMark, endMark := t.tlsMark, t.firstByteMark, t.endMark
	t.mu.Unlock()
	// The request is the first write after the handshake's (after none
	// over plain http): the WroteRequest hook comes before the
	// transport's buffer reaches the connection, and the last write before
	// the answer may be HTTP/2's acknowledgement of the server's settings.
	request := tlsMark.writes
	if !ok || firstByteMark.writes <= request || firstByteMark.readFirst.IsZero() || endMark.lastRead.IsZero() {
		return nil, false
	}
	var out []Phase
	if !dnsDone.IsZero() {
		out = append(out, Phase{Name: PhaseDNS, Duration: dnsDone.Sub(start)})
	}
	out = append(out, Phase{Name: PhaseConnect, Duration: kc.handshakeRTT()})
	if !tlsDone.IsZero() {
		hello := kc.sentAt(0)
		if hello.IsZero() || tlsMark.lastRead.IsZero() {
			return nil, false
		}
		out = append(out, Phase{Name: PhaseTLS, Duration: tlsMark.lastRead.Sub(hello)})
	}
	requestSent := kc.sentAt(request)
	if requestSent.IsZero() {
		return nil, false
	}
	out = append(out, Phase{Name: PhaseProcessing, Duration: firstByteMark.readFirst.Sub(requestSent)},
		Phase{Name: PhaseTransfer, Duration: endMark.lastRead.Sub(firstByteMark.readFirst)})
	var sum time.Duration
	for _, ph := range out {
		if ph.Duration < 0 {
			return nil, false
		}
		sum += ph.Duration
	}
	return out, sum <= end.Sub(start)
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
