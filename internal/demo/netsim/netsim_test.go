package netsim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bantay-noc/bantay/probes/echo"
	"github.com/bantay-noc/bantay/probes/prober"
	"github.com/bantay-noc/bantay/probes/reflector"
)

var (
	impaired = netip.MustParseAddr("127.0.0.5")
	clean    = netip.MustParseAddr("127.0.0.6")
)

func median(t *testing.T, n int, p prober.Prober) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := p.Probe(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s probe: %v", p.Method(), err)
		}
		ds = append(ds, res.RTT)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// checkInjected compares the median through an impaired profile with the
// median of an unimpaired source on the same proxy. Every impaired sample
// is at least base (two halves, each at least base/2), so that bound is
// exact. The others are generous and relative, so a loaded machine, which
// slows both sources alike, does not fail them.
func checkInjected(t *testing.T, slow, fast, base time.Duration) {
	t.Helper()
	if slow < base {
		t.Errorf("impaired median %v is below the profile's base %v", slow, base)
	}
	if extra := slow - fast; extra < base/2 || extra > 5*base+200*time.Millisecond {
		t.Errorf("impaired median %v vs unimpaired %v: injected about %v, want about %v", slow, fast, extra, base)
	}
}

func startReflector(t *testing.T) string {
	t.Helper()
	r, err := reflector.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(context.Background())
	t.Cleanup(func() { r.Close() })
	return r.Addr().String()
}

func TestUDPProxyDelay(t *testing.T) {
	const base = 40 * time.Millisecond
	table := NewTable(Profile{})
	if err := table.Set(impaired, Profile{Base: base, Jitter: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	proxy, err := NewUDPProxy("127.0.0.1:0", startReflector(t), table, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	slow, _ := prober.NewUDP(proxy.Addr().String(), prober.Options{ProbeID: "t", BindAddress: impaired})
	fast, _ := prober.NewUDP(proxy.Addr().String(), prober.Options{ProbeID: "t", BindAddress: clean})
	checkInjected(t, median(t, 21, slow), median(t, 21, fast), base)
}

func TestUDPProxyLoss(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.8")
	table := NewTable(Profile{})
	const loss = 0.2
	table.Set(src, Profile{Base: time.Millisecond, Loss: loss})
	proxy, err := NewUDPProxy("127.0.0.1:0", startReflector(t), table, Options{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), proxy.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Small windows, so no socket buffer overflows and only the profile loses.
	const windows, perWindow = 10, 50
	got := map[uint64]bool{}
	buf := make([]byte, 256)
	for w := range windows {
		for i := range perWindow {
			b, _ := echo.Append(nil, echo.Packet{Sequence: uint64(w*perWindow + i), ProbeID: "t"})
			conn.Write(b)
		}
		conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			if p, err := echo.Decode(buf[:n]); err == nil {
				got[p.Sequence] = true
			}
		}
	}
	sent := windows * perWindow
	ratio := 1 - float64(len(got))/float64(sent)
	// Binomial sd is about 1.8 percentage points here; allow 6.
	if ratio < loss-0.06 || ratio > loss+0.06 {
		t.Errorf("lost %.1f%% of %d, want about %.0f%%", ratio*100, sent, loss*100)
	}
	if s := proxy.Stats(); s.Lost == 0 || s.Overflow != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestUDPProxyBoundsFlows(t *testing.T) {
	proxy, err := NewUDPProxy("127.0.0.1:0", startReflector(t), NewTable(Profile{}), Options{MaxFlows: 2, IdleTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	req, _ := echo.Append(nil, echo.Packet{Sequence: 1, ProbeID: "t"})
	for range 5 {
		c, err := net.Dial("udp", proxy.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 256)); err != nil {
			t.Fatalf("no reply through the proxy: %v", err)
		}
		c.Close()
		if s := proxy.Stats(); s.Flows > 2 {
			t.Fatalf("%d flows open, limit 2", s.Flows)
		}
	}
	if s := proxy.Stats(); s.Evicted < 3 {
		t.Errorf("evicted %d flows, want at least 3", s.Evicted)
	}
	deadline := time.Now().Add(5 * time.Second)
	for proxy.Stats().Flows > 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle flows were not reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTCPProxyDelaysHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	const base = 40 * time.Millisecond
	table := NewTable(Profile{})
	table.Set(impaired, Profile{Base: base, Jitter: 2 * time.Millisecond})
	proxy, err := NewTCPProxy("127.0.0.1:0", srv.Listener.Addr().String(), table, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	url := "http://" + proxy.Addr().String() + "/"
	slow := prober.NewHTTP(url, 200, false, prober.Options{BindAddress: impaired})
	fast := prober.NewHTTP(url, 200, false, prober.Options{BindAddress: clean})
	checkInjected(t, median(t, 21, slow), median(t, 21, fast), base)
}

// TestTCPProxyIntegrity pushes 2 MiB each way through a jittery, lossy
// profile: delays may reorder nothing, and every byte must arrive.
func TestTCPProxyIntegrity(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	proxy, err := NewTCPProxy("127.0.0.1:0", l.Addr().String(), NewTable(Profile{Base: 2 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01}), Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	c, err := net.Dial("tcp", proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	go func() { c.Write(data); c.(*net.TCPConn).CloseWrite() }()
	back, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) {
		t.Fatalf("echoed %d bytes, differs from the %d sent", len(back), len(data))
	}
}

func TestTCPProxyBoundsConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	proxy, err := NewTCPProxy("127.0.0.1:0", l.Addr().String(), NewTable(Profile{}), Options{MaxFlows: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	first, err := net.Dial("tcp", proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for proxy.Stats().Flows < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	second, err := net.Dial("tcp", proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection over the limit: read %v, want EOF (closed by the proxy)", err)
	}
	if s := proxy.Stats(); s.Evicted != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestCloseStopsEverything closes proxies with live flows and connections
// and checks that no goroutine they started is left behind.
func TestCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	refl, err := reflector.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	reflDone := make(chan struct{})
	go func() { refl.Serve(context.Background()); close(reflDone) }()
	defer func() { refl.Close(); <-reflDone }()

	up, err := NewUDPProxy("127.0.0.1:0", refl.Addr().String(), NewTable(Profile{Base: time.Second}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := net.Dial("udp", up.Addr().String())
	req, _ := echo.Append(nil, echo.Packet{Sequence: 1, ProbeID: "t"})
	c.Write(req) // stays queued in the delay line: Close must not wait for it
	for up.Stats().Flows == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	tp, err := NewTCPProxy("127.0.0.1:0", l.Addr().String(), NewTable(Profile{}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := net.Dial("tcp", tp.Addr().String())
	server, _ := l.Accept()
	for tp.Stats().Flows == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := up.Close(); err != nil {
		t.Error(err)
	}
	if err := tp.Close(); err != nil {
		t.Error(err)
	}
	tc.Close()
	server.Close()
	l.Close()
	if _, err := net.Dial("tcp", tp.Addr().String()); err == nil {
		t.Error("TCP proxy still accepts after Close")
	}
}

func TestTable(t *testing.T) {
	def := Profile{Base: time.Millisecond}
	tb := NewTable(def)
	p := Profile{Base: 30 * time.Millisecond, Loss: 0.03}
	if err := tb.Set(netip.MustParseAddr("127.0.3.1"), p); err != nil {
		t.Fatal(err)
	}
	if got := tb.Lookup(netip.MustParseAddr("::ffff:127.0.3.1")); got != p {
		t.Errorf("4-in-6 lookup = %v, want %v", got, p)
	}
	if got := tb.Lookup(netip.MustParseAddr("127.0.3.2")); got != def {
		t.Errorf("unknown source = %v, want default", got)
	}
	for _, bad := range []Profile{{Base: -1}, {Jitter: -1}, {Loss: 1}, {Loss: -0.1}} {
		if err := tb.Set(netip.MustParseAddr("127.0.0.9"), bad); err == nil {
			t.Errorf("Set accepted %+v", bad)
		}
	}
}

func TestSamplerIsSeededAndShaped(t *testing.T) {
	p := Profile{Base: 30 * time.Millisecond, Jitter: 8 * time.Millisecond, Loss: 0.03}
	a, b, c := newSampler(7), newSampler(7), newSampler(8)
	same, differ := true, false
	for range 100 {
		x, y, z := a.oneWay(p), b.oneWay(p), c.oneWay(p)
		same = same && x == y
		differ = differ || x != z
	}
	if !same || !differ {
		t.Fatalf("same seed same draws: %v; other seed differs: %v", same, differ)
	}
	// The model, checked on draws (no clocks involved): mean RTT is
	// Base+Jitter, nothing is below Base, round-trip loss is Loss.
	s := newSampler(1)
	const n = 200000
	var sum time.Duration
	lostTrips := 0
	for range n {
		rtt := s.oneWay(p) + s.oneWay(p)
		if rtt < p.Base {
			t.Fatalf("RTT %v below base %v", rtt, p.Base)
		}
		sum += rtt
		out, back := s.lost(p), s.lost(p) // each direction draws its own loss
		if out || back {
			lostTrips++
		}
	}
	mean := sum / n
	if want := p.Base + p.Jitter; mean < want-want/50 || mean > want+want/50 {
		t.Errorf("mean RTT %v, want %v", mean, want)
	}
	if r := float64(lostTrips) / n; r < 0.027 || r > 0.033 {
		t.Errorf("round-trip loss %.4f, want 0.03", r)
	}
}

// BenchmarkUDPProxyRoundTrip is one echo through an unimpaired proxy: the
// proxy's own cost on top of loopback.
func BenchmarkUDPProxyRoundTrip(b *testing.B) {
	r, err := reflector.Listen("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	go r.Serve(context.Background())
	defer r.Close()
	proxy, err := NewUDPProxy("127.0.0.1:0", r.Addr().String(), NewTable(Profile{}), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	c, err := net.Dial("udp", proxy.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req, _ := echo.Append(nil, echo.Packet{Sequence: 1, ProbeID: "t"})
	buf := make([]byte, 256)
	for b.Loop() {
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
