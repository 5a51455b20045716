package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/echo"
	"github.com/bantay-noc/bantay/probes/reflector"
)

// probe runs p once with a timeout and returns the latency, error and reason.
func probe(t *testing.T, p Prober, timeout time.Duration) (time.Duration, Reason, error) {
	t.Helper()
	res, reason, err := probeResult(t, p, timeout)
	return res.RTT, reason, err
}

// probeResult runs p once with a timeout. A success must have a latency, a
// failure none (and no phases).
func probeResult(t *testing.T, p Prober, timeout time.Duration) (Result, Reason, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := p.Probe(ctx)
	if err == nil && res.RTT <= 0 {
		t.Errorf("%s probe succeeded with RTT %v", p.Method(), res.RTT)
	}
	if err != nil && (res.RTT != 0 || res.Phases != nil) {
		t.Errorf("%s probe failed (%v) but reported RTT %v, phases %v", p.Method(), err, res.RTT, res.Phases)
	}
	return res, Classify(err), err
}

func wantReason(t *testing.T, p Prober, timeout time.Duration, want Reason) {
	t.Helper()
	_, got, err := probe(t, p, timeout)
	if got != want {
		t.Fatalf("%s probe: reason %q (err %v), want %q", p.Method(), got, err, want)
	}
}

// closedPort returns an address on which nothing listens (TCP and UDP).
func closedPort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().String()
		c.Close()
		return addr
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// nxdomainResolver answers every query with NXDOMAIN from a DNS server on
// 127.0.0.1, so DNS failures are tested for real without leaving loopback.
func nxdomainResolver(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := append([]byte(nil), buf[:n]...)
			resp[2] |= 0x80           // QR: this is a response
			resp[3] = 0x80 | 0x03     // RA, RCODE 3 = NXDOMAIN
			resp[10], resp[11] = 0, 0 // no additional records (drop EDNS)
			resp = resp[:12+questionLen(resp[12:])]
			pc.WriteTo(resp, from)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// questionLen is the length of the first question (name, type, class).
func questionLen(b []byte) int {
	i := 0
	for i < len(b) && b[i] != 0 {
		i += int(b[i]) + 1
	}
	return min(i+5, len(b))
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	remotes := make(chan net.Addr, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			remotes <- c.RemoteAddr()
			c.Close()
		}
	}()

	p := NewTCP(l.Addr().String(), Options{BindAddress: netip.MustParseAddr("127.0.0.2")})
	d, _, err := probe(t, p, 30*time.Second)
	if err != nil || d <= 0 {
		t.Fatalf("tcp probe: %v, %v", d, err)
	}
	if from := (<-remotes).(*net.TCPAddr).IP.String(); from != "127.0.0.2" {
		t.Errorf("connection came from %s, want the bind address 127.0.0.2", from)
	}

	wantReason(t, NewTCP(closedPort(t, "tcp"), Options{}), 30*time.Second, ReasonRefused)
	wantReason(t, NewTCP("nonexistent.invalid.:80", Options{Resolver: nxdomainResolver(t)}), 30*time.Second, ReasonDNS)
}

func TestHTTP(t *testing.T) {
	var mu sync.Mutex
	var remote string
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remote = r.RemoteAddr
		mu.Unlock()
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	slow := make(chan struct{})
	defer close(slow)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-slow:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()

	bound := Options{BindAddress: netip.MustParseAddr("127.0.0.3")}
	if d, _, err := probe(t, NewHTTP(srv.URL+"/ok", 200, false, bound), 30*time.Second); err != nil || d <= 0 {
		t.Fatalf("http probe: %v, %v", d, err)
	}
	mu.Lock()
	if host, _, _ := net.SplitHostPort(remote); host != "127.0.0.3" {
		t.Errorf("request came from %s, want the bind address 127.0.0.3", remote)
	}
	mu.Unlock()

	if _, _, err := probe(t, NewHTTP(srv.URL+"/moved", 0, false, Options{}), 30*time.Second); err != nil {
		t.Errorf("a 302 must pass the default status check: %v", err)
	}
	wantReason(t, NewHTTP(srv.URL+"/fail", 0, false, Options{}), 30*time.Second, ReasonHTTPStatus)
	wantReason(t, NewHTTP(srv.URL+"/moved", 200, false, Options{}), 30*time.Second, ReasonHTTPStatus)
	wantReason(t, NewHTTP(srv.URL+"/slow", 0, false, Options{}), 300*time.Millisecond, ReasonTimeout)
	wantReason(t, NewHTTP("http://"+closedPort(t, "tcp")+"/", 0, false, Options{}), 30*time.Second, ReasonRefused)
	wantReason(t, NewHTTP("http://nonexistent.invalid./", 0, false, Options{Resolver: nxdomainResolver(t)}), 30*time.Second, ReasonDNS)

	// TLS: https to a plain HTTP server, and to an untrusted certificate.
	plainAsTLS := "https://" + srv.Listener.Addr().String() + "/ok"
	wantReason(t, NewHTTP(plainAsTLS, 0, false, Options{}), 30*time.Second, ReasonTLS)
	wantReason(t, NewHTTP(tlsSrv.URL+"/ok", 0, false, Options{}), 30*time.Second, ReasonTLS)
	if _, _, err := probe(t, NewHTTP(tlsSrv.URL+"/ok", 200, true, Options{}), 30*time.Second); err != nil {
		t.Errorf("https with insecure_skip_verify: %v", err)
	}
}

// startReflector serves the shipped reflector until the test ends.
func startReflector(t *testing.T) *reflector.Reflector {
	t.Helper()
	r, err := reflector.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.Serve(ctx)
	return r
}

func TestUDPWithReflector(t *testing.T) {
	r := startReflector(t)
	p, err := NewUDP(r.Addr().String(), Options{ProbeID: "mnl-01", BindAddress: netip.MustParseAddr("127.0.0.4")})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if d, _, err := probe(t, p, 30*time.Second); err != nil || d <= 0 {
			t.Fatalf("udp probe: %v, %v", d, err)
		}
	}
	if s := r.Stats(); s.Reflected != 3 {
		t.Errorf("reflector stats %+v, want 3 reflected", s)
	}
}

// TestUDPMatchesBySequence answers each request first with a stale reply
// (earlier sequence), garbage and a reply for another probe id, and only
// after a delay with the right reply: the prober must wait for the right one.
func TestUDPMatchesBySequence(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	const delay = 50 * time.Millisecond
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := echo.Decode(buf[:n])
			if err != nil {
				continue
			}
			stale := req
			stale.Kind, stale.Sequence = echo.KindReply, req.Sequence-1
			other := req
			other.Kind, other.ProbeID = echo.KindReply, "someone-else"
			for _, bad := range []echo.Packet{stale, other} {
				b, _ := echo.Append(nil, bad)
				pc.WriteTo(b, from)
			}
			pc.WriteTo([]byte("garbage"), from)
			time.Sleep(delay)
			good := req
			good.Kind = echo.KindReply
			b, _ := echo.Append(nil, good)
			pc.WriteTo(b, from)
			pc.WriteTo(b, from) // a duplicate, for the next probe to ignore
		}
	}()
	p, err := NewUDP(pc.LocalAddr().String(), Options{ProbeID: "mnl-01"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d, _, err := probe(t, p, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Not a timing assertion: the right reply is only sent after the
		// sleep, so an earlier answer means a wrong packet was accepted.
		if d < delay {
			t.Fatalf("latency %v < %v: accepted a stale, foreign or garbage reply", d, delay)
		}
	}
}

func TestUDPFailures(t *testing.T) {
	// A socket that reads nothing and answers nothing: a black hole.
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	p, _ := NewUDP(hole.LocalAddr().String(), Options{ProbeID: "p"})
	wantReason(t, p, 200*time.Millisecond, ReasonTimeout)

	p, _ = NewUDP(closedPort(t, "udp"), Options{ProbeID: "p"})
	wantReason(t, p, 30*time.Second, ReasonRefused)

	p, _ = NewUDP("nonexistent.invalid.:7001", Options{ProbeID: "p", Resolver: nxdomainResolver(t)})
	wantReason(t, p, 30*time.Second, ReasonDNS)

	if _, err := NewUDP("127.0.0.1:1", Options{}); err == nil {
		t.Error("NewUDP accepted an empty probe id")
	}
}

func TestClassify(t *testing.T) {
	cases := map[Reason]error{
		"":               nil,
		ReasonTimeout:    fmt.Errorf("wrapped: %w", context.DeadlineExceeded),
		ReasonHTTPStatus: &StatusError{Got: 500},
		ReasonOther:      errors.New("something else"),
	}
	for want, err := range cases {
		if got := Classify(err); got != want {
			t.Errorf("Classify(%v) = %q, want %q", err, got, want)
		}
	}
}

// The reasons a prober gives are the reasons the metric model lists (and
// the agent exports at 0 from the start): no more, no fewer.
func TestReasonsAreTheMetricModels(t *testing.T) {
	ours := []Reason{ReasonTimeout, ReasonRefused, ReasonDNS, ReasonTLS, ReasonHTTPStatus, ReasonOther}
	if len(ours) != len(metricmodel.FailureReasons) {
		t.Fatalf("prober has %d reasons, the metric model %d", len(ours), len(metricmodel.FailureReasons))
	}
	for i, r := range ours {
		if string(r) != metricmodel.FailureReasons[i] {
			t.Errorf("reason %d: prober %q, metric model %q", i, r, metricmodel.FailureReasons[i])
		}
	}
}
