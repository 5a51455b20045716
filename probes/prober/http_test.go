package prober

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHTTPPhases injects a delay into every phase but connect and checks
// that each phase reports its own: DNS answers late (a delayed miekg/dns
// server), the TLS handshake waits in the server's GetCertificate, the
// handler sleeps before its first byte (processing) and between two writes
// of the body (transfer).
func TestHTTPPhases(t *testing.T) {
	const (
		dnsDelay      = 60 * time.Millisecond
		tlsDelay      = 70 * time.Millisecond
		firstByte     = 80 * time.Millisecond
		transferDelay = 90 * time.Millisecond
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(firstByte)
		w.Write([]byte("head "))
		w.(http.Flusher).Flush()
		time.Sleep(transferDelay)
		w.Write([]byte("tail"))
	}))
	srv.StartTLS()
	defer srv.Close()
	cert := srv.TLS.Certificates[0]
	srv.TLS.Certificates = nil
	srv.TLS.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		time.Sleep(tlsDelay)
		return &cert, nil
	}
	dnsSrv := startDNS(t, dnsDelay)
	url := strings.Replace(srv.URL, "127.0.0.1", "web.bantay.test", 1) + "/"
	p := NewHTTP(url, 200, true, Options{Resolver: dnsSrv.resolver()})

	phases := map[string][]time.Duration{}
	for range 3 {
		res, _, err := probeResult(t, p, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var sum time.Duration
		var names []string
		for _, ph := range res.Phases {
			phases[ph.Name] = append(phases[ph.Name], ph.Duration)
			names = append(names, ph.Name)
			sum += ph.Duration
		}
		if got := strings.Join(names, ","); got != "dns,connect,tls,processing,transfer" {
			t.Fatalf("phases %s, want dns,connect,tls,processing,transfer", got)
		}
		if sum != res.RTT {
			t.Errorf("phases add up to %v, RTT is %v", sum, res.RTT)
		}
		if res.StatusCode != 200 || !res.CertNotAfter.Equal(srv.Certificate().NotAfter) {
			t.Errorf("status %d, cert expiry %v; want 200 and %v", res.StatusCode, res.CertNotAfter, srv.Certificate().NotAfter)
		}
	}
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 2, Interval: time.Millisecond, Timeout: 10 * time.Second})
	var names []string
	for _, ph := range r.Phases() {
		names = append(names, ph.Name)
		if ph.Name == PhaseTransfer && ph.Duration < transferDelay {
			t.Errorf("mean transfer phase %v, below the injected %v", ph.Duration, transferDelay)
		}
	}
	if got := strings.Join(names, ","); got != "dns,connect,tls,processing,transfer" || r.Received() != 2 {
		t.Errorf("round of 2: %d answered, mean phases %s", r.Received(), got)
	}
	wantNear(t, "dns phase", phases[PhaseDNS], dnsDelay)
	wantNear(t, "tls phase", phases[PhaseTLS], tlsDelay)
	wantNear(t, "processing phase", phases[PhaseProcessing], firstByte)
	wantNear(t, "transfer phase", phases[PhaseTransfer], transferDelay)
	wantNear(t, "connect phase (nothing injected)", phases[PhaseConnect], 0)
}

// TestHTTPPlainPhases: no DNS for an IP address, no TLS for http: those
// phases are absent, not zero.
func TestHTTPPlainPhases(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	res, _, err := probeResult(t, NewHTTP(srv.URL, 0, false, Options{}), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ph := range res.Phases {
		names = append(names, ph.Name)
	}
	if got := strings.Join(names, ","); got != "connect,processing,transfer" || !res.CertNotAfter.IsZero() {
		t.Errorf("phases %s, cert expiry %v; want connect,processing,transfer and none", got, res.CertNotAfter)
	}

	// A status failure keeps its status code, and no phases.
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer fail.Close()
	res, reason, _ := probeResult(t, NewHTTP(fail.URL, 0, false, Options{}), 10*time.Second)
	if reason != ReasonHTTPStatus || res.StatusCode != 503 {
		t.Errorf("503: reason %q, status %d", reason, res.StatusCode)
	}
}

// TestHTTPRedirectLoop: a server that redirects to itself forever is one
// 3xx answer, never a hang: a success by default, an http_status failure
// naming the 302 when 200 is expected.
func TestHTTPRedirectLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	res, _, err := probeResult(t, NewHTTP(srv.URL+"/loop", 0, false, Options{}), 10*time.Second)
	if err != nil || res.StatusCode != http.StatusFound {
		t.Errorf("redirect loop, any 2xx/3xx: status %d, error %v; want the 302 as the answer", res.StatusCode, err)
	}
	res, reason, err := probeResult(t, NewHTTP(srv.URL+"/loop", 200, false, Options{}), 10*time.Second)
	if reason != ReasonHTTPStatus || res.StatusCode != http.StatusFound || !strings.Contains(err.Error(), "http status 302, want 200") {
		t.Errorf("redirect loop, 200 expected: reason %q, status %d, error %v", reason, res.StatusCode, err)
	}
}
