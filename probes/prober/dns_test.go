package prober

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// delayedDNS is a miekg/dns server on 127.0.0.1 that answers after delay:
// A 127.0.0.1 for any name under bantay.test, SERVFAIL for broken.test,
// NXDOMAIN for everything else. Only queries for A (and names outside
// bantay.test) are delayed: a stub resolver asks for AAAA too, in
// parallel or in turn as resolv.conf says, and the injected delay must be
// the same either way. It records where queries came from.
type delayedDNS struct {
	addr string
	mu   sync.Mutex
	from []string
}

func startDNS(t *testing.T, delay time.Duration) *delayedDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &delayedDNS{addr: pc.LocalAddr().String()}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		d.mu.Lock()
		d.from = append(d.from, w.RemoteAddr().String())
		d.mu.Unlock()
		q := req.Question[0]
		if q.Qtype != dns.TypeAAAA {
			time.Sleep(delay)
		}
		m := new(dns.Msg)
		m.SetReply(req)
		switch name := strings.ToLower(q.Name); {
		case strings.HasSuffix(name, "bantay.test."):
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			}
		case name == "broken.test.":
			m.Rcode = dns.RcodeServerFailure
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// resolver is a Go resolver that asks only d.
func (d *delayedDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, network, d.addr)
	}}
}

func TestDNSQueryTime(t *testing.T) {
	const delay = 60 * time.Millisecond
	srv := startDNS(t, delay)
	p, err := NewDNS(srv.addr, "www.bantay.test", "a", Options{BindAddress: netip.MustParseAddr("127.0.0.5")})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 5, Interval: 10 * time.Millisecond, Timeout: 5 * time.Second})
	if r.Sent != 5 || r.Received() != 5 {
		t.Fatalf("dns round: sent %d received %d errors %v", r.Sent, r.Received(), r.Errors)
	}
	wantNear(t, "dns query time", r.RTTs(), delay)
	srv.mu.Lock()
	if host, _, _ := net.SplitHostPort(srv.from[0]); host != "127.0.0.5" {
		t.Errorf("query came from %s, want the bind address 127.0.0.5", srv.from[0])
	}
	srv.mu.Unlock()
}

func TestDNSFailures(t *testing.T) {
	srv := startDNS(t, 0)
	for name, want := range map[string]string{"broken.test": "SERVFAIL", "missing.example": "NXDOMAIN"} {
		p, _ := NewDNS(srv.addr, name, "", Options{})
		_, reason, err := probe(t, p, 5*time.Second)
		var rc *RcodeError
		if reason != ReasonDNS || !errors.As(err, &rc) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: reason %q, error %v; want dns naming %s", name, reason, err, want)
		}
	}

	// A resolver that never answers: a timeout, named as such, within the
	// deadline.
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	p, _ := NewDNS(hole.LocalAddr().String(), "www.bantay.test", "", Options{})
	if _, reason, err := probe(t, p, 200*time.Millisecond); reason != ReasonTimeout || !strings.Contains(err.Error(), "no answer from") {
		t.Errorf("silent resolver: reason %q, error %v; want a timeout saying there was no answer", reason, err)
	}

	// The resolver's own name does not resolve.
	p, _ = NewDNS("nonexistent.invalid.:53", "www.bantay.test", "", Options{Resolver: nxdomainResolver(t)})
	wantReason(t, p, 5*time.Second, ReasonDNS)

	for _, bad := range [][2]string{{"ok.test", "BOGUS"}, {"", "A"}, {"bad..name", "A"}} {
		if _, err := NewDNS(srv.addr, bad[0], bad[1], Options{}); err == nil {
			t.Errorf("NewDNS(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
