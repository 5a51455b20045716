package prober

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/probes/echo"
)

// slack is how far above an injected delay the fastest sample may be: the
// time to wake a sleeping goroutine and cross loopback on a busy 2-core
// machine. The lower bound has no slack at all: servers answer only after
// their delay, so an RTT below it means a wrong packet was timed.
const slack = 40 * time.Millisecond

// wantNear fails unless the fastest of got is in [want, want+slack). The
// fastest, not the median: a loaded machine only adds time (CI once saw a
// TLS handshake take 142, 120 and 264 ms for 70 ms injected, under the race
// detector at a load average of 20), while a phase timed at the wrong
// moment is off in every sample, by another phase's delay (60 ms or more).
func wantNear(t *testing.T, what string, got []time.Duration, want time.Duration) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: no samples", what)
	}
	if fastest := slices.Min(got); fastest < want || fastest >= want+slack {
		t.Errorf("%s: fastest %v of %v, want the injected %v (+ at most %v)", what, fastest, got, want, slack)
	}
}

func TestStats(t *testing.T) {
	ms := func(v ...float64) []Result {
		var out []Result
		for _, f := range v {
			out = append(out, Result{RTT: time.Duration(f * float64(time.Millisecond))})
		}
		return out
	}
	r := &Round{Sent: 6, Results: ms(10, 30, 20, 20, 50)}
	s, ok := r.Stats()
	want := Stats{
		Min: 10 * time.Millisecond, P50: 20 * time.Millisecond, P90: 50 * time.Millisecond, P99: 50 * time.Millisecond,
		Max: 50 * time.Millisecond, Mean: 26 * time.Millisecond,
		// |30-10| + |20-30| + |20-20| + |50-20| = 60, over 4 differences
		Jitter: 15 * time.Millisecond, HasJitter: true, JitterSum: 60 * time.Millisecond, JitterPairs: 4,
	}
	if !ok || s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	if got := r.LossRatio(); got != 1.0/6 {
		t.Errorf("loss ratio %v, want 1/6", got)
	}
	if s, ok := (&Round{Sent: 1, Results: ms(7)}).Stats(); !ok || s.HasJitter || s.P99 != 7*time.Millisecond {
		t.Errorf("one sample: %+v %v: want no jitter and every percentile 7ms", s, ok)
	}
	if _, ok := (&Round{Sent: 3}).Stats(); ok {
		t.Error("a round without answers has stats; it must have none (not zero)")
	}
	if _, err := TakeRound(context.Background(), NewTCP("127.0.0.1:1", Options{}), RoundSpec{Count: 0, Timeout: time.Second}); err == nil {
		t.Error("a round of 0 probes was accepted")
	}
}

// impairedEcho is a UDP echo server (Bantay's packet format) that answers
// the n-th request it receives after delay plus extra[n], not at all if
// drop[n], and twice if dup[n]. One goroutine sends every reply in the
// order they are due, so the order the prober sees is the one the test
// chose, whatever the scheduler does.
type impairedEcho struct {
	delay time.Duration
	extra map[int]time.Duration
	drop  map[int]bool
	dup   map[int]bool
}

func (e impairedEcho) start(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	type reply struct {
		due time.Time
		b   []byte
		to  net.Addr
	}
	var (
		mu      sync.Mutex
		pending []reply
		wake    = make(chan struct{}, 1)
	)
	go func() { // reader
		buf := make([]byte, 1500)
		for n := 0; ; n++ {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				close(wake)
				return
			}
			req, err := echo.Decode(buf[:k])
			if err != nil || e.drop[n] {
				continue
			}
			req.Kind = echo.KindReply
			b, _ := echo.Append(nil, req)
			due := time.Now().Add(e.delay + e.extra[n])
			mu.Lock()
			pending = append(pending, reply{due, b, from})
			if e.dup[n] {
				pending = append(pending, reply{due, b, from})
			}
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	go func() { // sender, in due order
		for {
			mu.Lock()
			slices.SortStableFunc(pending, func(a, b reply) int { return a.due.Compare(b.due) })
			var due time.Time
			if len(pending) > 0 {
				due = pending[0].due
			}
			mu.Unlock()
			if due.IsZero() {
				if _, ok := <-wake; !ok {
					return
				}
				continue
			}
			timer := time.NewTimer(time.Until(due))
			select {
			case _, ok := <-wake:
				timer.Stop()
				if !ok {
					return
				}
				continue // something new may be due sooner
			case <-timer.C:
			}
			mu.Lock()
			r := pending[0]
			pending = pending[1:]
			mu.Unlock()
			pc.WriteTo(r.b, r.to)
		}
	}()
	return pc.LocalAddr().String()
}

// TestUDPRoundCountsLossDuplicatesAndReordering: ten probes against an
// echo that delays every reply 50 ms, drops the 2nd and 8th request, holds
// the 3rd back 200 ms more (so it arrives after later ones) and answers
// the 6th twice. Counts must be exact and separate; the median is the
// injected delay.
func TestUDPRoundCountsLossDuplicatesAndReordering(t *testing.T) {
	const delay = 50 * time.Millisecond
	addr := impairedEcho{
		delay: delay,
		extra: map[int]time.Duration{2: 200 * time.Millisecond},
		drop:  map[int]bool{1: true, 7: true},
		dup:   map[int]bool{5: true},
	}.start(t)
	p, err := NewUDP(addr, Options{ProbeID: "mnl-01"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := TakeRound(context.Background(), p, RoundSpec{Count: 10, Interval: 20 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 10 || r.Received() != 8 || r.Duplicates != 1 || r.Reordered != 1 || r.Failures[ReasonTimeout] != 2 || len(r.Failures) != 1 {
		t.Fatalf("round: sent %d received %d duplicates %d reordered %d failures %v; want 10, 8, 1, 1, 2 timeouts",
			r.Sent, r.Received(), r.Duplicates, r.Reordered, r.Failures)
	}
	if r.LossRatio() != 0.2 {
		t.Errorf("loss ratio %v, want 0.2", r.LossRatio())
	}
	wantNear(t, "udp rtt", r.RTTs(), delay)
	if rtts := r.RTTs(); rtts[1] < delay+200*time.Millisecond {
		t.Errorf("the held-back reply (3rd probe, 2nd answered) has RTT %v, want at least %v", rtts[1], delay+200*time.Millisecond)
	}
}

// TestUDPRoundWithReflector: the shipped reflector needs nothing new for
// rounds: sequence numbers are echoed as they are.
func TestUDPRoundWithReflector(t *testing.T) {
	p, _ := NewUDP(startReflector(t).Addr().String(), Options{ProbeID: "dvo-01"})
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 5, Interval: 5 * time.Millisecond, Timeout: 5 * time.Second})
	if r.Sent != 5 || r.Received() != 5 || r.Duplicates != 0 || r.Reordered != 0 || len(r.Failures) != 0 {
		t.Fatalf("round %+v: want 5 of 5 answered, nothing else", r)
	}
}

func TestUDPRoundFailures(t *testing.T) {
	spec := RoundSpec{Count: 3, Interval: 10 * time.Millisecond, Timeout: 300 * time.Millisecond}
	p, _ := NewUDP(closedPort(t, "udp"), Options{ProbeID: "p"})
	if r, _ := TakeRound(context.Background(), p, spec); r.Sent != 3 || r.Received() != 0 || r.Failures[ReasonRefused] != 3 {
		t.Errorf("closed port: sent %d received %d failures %v, want 3 refused", r.Sent, r.Received(), r.Failures)
	}
	p, _ = NewUDP("nonexistent.invalid.:7001", Options{ProbeID: "p", Resolver: nxdomainResolver(t)})
	r, _ := TakeRound(context.Background(), p, spec)
	var dnsErr *net.DNSError
	if r.Sent != 3 || r.Failures[ReasonDNS] != 3 || !errors.As(r.Errors[ReasonDNS], &dnsErr) {
		t.Errorf("unresolvable: sent %d failures %v errors %v, want 3 dns", r.Sent, r.Failures, r.Errors)
	}
}

// closingListener listens on addr and closes every connection it accepts;
// it returns the address.
func closingListener(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// TestProbeRoundRunsOnSchedule: a method without sequence numbers (tcp)
// takes a round as Count probes, each a Probe of its own.
func TestProbeRoundRunsOnSchedule(t *testing.T) {
	r, _ := TakeRound(context.Background(), NewTCP(closingListener(t, "127.0.0.1:0"), Options{}), RoundSpec{Count: 4, Interval: 5 * time.Millisecond, Timeout: 5 * time.Second})
	if r.Sent != 4 || r.Received() != 4 {
		t.Fatalf("tcp round: sent %d received %d failures %v", r.Sent, r.Received(), r.Errors)
	}
	r, _ = TakeRound(context.Background(), NewTCP(closedPort(t, "tcp"), Options{}), RoundSpec{Count: 2, Interval: 5 * time.Millisecond, Timeout: 5 * time.Second})
	if r.Sent != 2 || r.Failures[ReasonRefused] != 2 {
		t.Fatalf("tcp round to a closed port: %+v", r)
	}
}

// TestRTTOfKernelTimestamp: the kernel's receive time is used when it is
// consistent with the monotonic clock, and ignored when a wall-clock step
// makes it negative or larger than the monotonic RTT; the kernel's send
// time, likewise, only with a receive time and when it is consistent.
func TestRTTOfKernelTimestamp(t *testing.T) {
	sent := time.Now()
	mono := sent.Add(10 * time.Millisecond)
	wall := sent.Round(0)
	for _, tc := range []struct {
		name               string
		kernelSent, kernel time.Time
		want               time.Duration
	}{
		{"no timestamp", time.Time{}, time.Time{}, 10 * time.Millisecond},
		{"kernel saw it earlier", time.Time{}, wall.Add(9 * time.Millisecond), 9 * time.Millisecond},
		{"clock stepped back", time.Time{}, wall.Add(-time.Second), 10 * time.Millisecond},
		{"clock stepped forward", time.Time{}, wall.Add(time.Second), 10 * time.Millisecond},
		{"kernel sent it later", wall.Add(time.Millisecond), wall.Add(9 * time.Millisecond), 8 * time.Millisecond},
		{"send time without a receive time", wall.Add(time.Millisecond), time.Time{}, 10 * time.Millisecond},
		{"send time after the receive time", wall.Add(9500 * time.Microsecond), wall.Add(9 * time.Millisecond), 9 * time.Millisecond},
	} {
		if got := rttOf(sent, mono, tc.kernelSent, tc.kernel); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
