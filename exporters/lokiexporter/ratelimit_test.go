package lokiexporter

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func testLimiter(burst int, perMinute float64, maxSources int) *limiter {
	return newLimiter(RateLimitConfig{Enabled: true, Key: "probe", EventsPerMinute: perMinute, Burst: burst, SummaryInterval: time.Minute, MaxSources: maxSources})
}

func attrsOf(city string) func() map[string]string {
	return func() map[string]string { return map[string]string{"src_city": city} }
}

func TestLimiterBurstThenSuppressThenCalmDownSummary(t *testing.T) {
	l := testLimiter(3, 6, 10) // one token every 10 s
	for i := range 3 {
		if ok, sum := l.admit("mnl-01", t0, attrsOf("Manila")); !ok || sum != nil {
			t.Fatalf("event %d of the burst refused (%v, %v)", i, ok, sum)
		}
	}
	for i := range 7 {
		at := t0.Add(time.Duration(i) * time.Second)
		if ok, _ := l.admit("mnl-01", at, attrsOf(fmt.Sprint("city", i))); ok {
			t.Fatalf("flapping event %d admitted beyond the burst", i)
		}
	}
	// Another probe has its own bucket.
	if ok, _ := l.admit("dvo-01", t0, attrsOf("Davao")); !ok {
		t.Fatal("a quiet probe was limited by a flapping one")
	}
	// Not yet a minute: no periodic summary.
	if due := l.due(t0.Add(30*time.Second), false); len(due) != 0 {
		t.Fatalf("summary before the interval: %+v", due)
	}
	// 10 s refill one token: the next event passes and carries the summary
	// of the 7 refused ones, with the labels of the last refused event.
	ok, sum := l.admit("mnl-01", t0.Add(10*time.Second), attrsOf("x"))
	if !ok || sum == nil {
		t.Fatalf("calm-down: admitted=%v summary=%v", ok, sum)
	}
	if sum.Key != "mnl-01" || sum.Count != 7 || !sum.From.Equal(t0) || !sum.To.Equal(t0.Add(10*time.Second)) || sum.Attrs["src_city"] != "city6" {
		t.Errorf("summary %+v", sum)
	}
	// Reported once only.
	if due := l.due(t0.Add(time.Hour), true); len(due) != 0 {
		t.Errorf("summary reported twice: %+v", due)
	}
}

func TestLimiterPeriodicSummaryWhileFlapping(t *testing.T) {
	l := testLimiter(1, 0.5, 10) // one token every two minutes
	l.admit("mnl-01", t0, attrsOf("Manila"))
	// Flapping every second; the summary loop checks every second too.
	var periodic, calm []suppression
	admittedAt := time.Duration(-1)
	for i := 1; i <= 130; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		ok, sum := l.admit("mnl-01", now, attrsOf("Manila"))
		if ok && admittedAt < 0 {
			admittedAt = time.Duration(i) * time.Second
		}
		if sum != nil {
			calm = append(calm, *sum)
		}
		periodic = append(periodic, l.due(now, false)...)
	}
	// Events 1..61 refused in the first minute-long window: the periodic
	// summary goes out although no event passes.
	if len(periodic) < 1 || periodic[0].Count != 61 || periodic[0].To.Sub(periodic[0].From) != time.Minute {
		t.Fatalf("periodic summaries %+v, want the first of 61 events over a minute", periodic)
	}
	// The token is back at 120 s: that event passes, carrying the summary
	// of 62..119, and the periodic loop has nothing more for that window.
	if admittedAt != 120*time.Second {
		t.Fatalf("first admitted at %s, want 2m0s", admittedAt)
	}
	if len(periodic) != 1 || len(calm) != 1 || calm[0].Count != 58 {
		t.Fatalf("periodic %+v, calm-down %+v; want one each, the second of 58", periodic, calm)
	}
}

func TestLimiterForgetsIdleSourcesAndBoundsMemory(t *testing.T) {
	l := testLimiter(2, 60, 3)
	for i := range 5 {
		l.admit(fmt.Sprint("p", i), t0, attrsOf("Manila"))
	}
	// Three keys plus the shared overflow bucket at most.
	if n := l.tracked(); n != 4 {
		t.Fatalf("tracking %d sources, want 3 + overflow", n)
	}
	// p3 and p4 share the overflow bucket of 2: a third newcomer is limited.
	if ok, _ := l.admit("p5", t0, attrsOf("Manila")); ok {
		t.Error("overflow bucket not shared")
	}
	// After the buckets are full again, idle sources are forgotten; the
	// overflow one first reports its pending summary.
	due := l.due(t0.Add(time.Hour), false)
	if len(due) != 1 || due[0].Key != overflowKey || due[0].Count != 1 {
		t.Errorf("due %+v", due)
	}
	if n := l.tracked(); n != 0 {
		t.Errorf("still tracking %d idle sources", n)
	}
}

func TestLimiterClockStepBack(t *testing.T) {
	l := testLimiter(1, 60, 10)
	l.admit("p", t0, attrsOf("Manila"))
	// Stepped back an hour: the empty bucket stays empty for now…
	back := t0.Add(-time.Hour)
	if ok, _ := l.admit("p", back, attrsOf("Manila")); ok {
		t.Fatal("admitted after the clock stepped back")
	}
	// …but the source is not silenced for the hour the clock lost: one
	// emission interval (1 s at 60/min) later it may send again.
	if ok, _ := l.admit("p", back.Add(time.Second), attrsOf("Manila")); !ok {
		t.Fatal("source silenced by a clock step back")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := testLimiter(100, 1, 1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if ok, _ := l.admit("p", t0, attrsOf(fmt.Sprint(g, i))); ok {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	due := l.due(t0.Add(time.Minute), false)
	if admitted != 100 || len(due) != 1 || due[0].Count != 300 {
		t.Fatalf("admitted %d (want 100), due %+v (want 300 suppressed)", admitted, due)
	}
}

func TestWindowText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "minute", 59600 * time.Millisecond: "minute", 0: "second",
		12 * time.Second: "12s", 75 * time.Second: "1m15s",
	} {
		if got := windowText(d); got != want {
			t.Errorf("windowText(%s) = %q, want %q", d, got, want)
		}
	}
}

func BenchmarkLimiterAdmit(b *testing.B) {
	l := testLimiter(10, 6, 10_000)
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprint("probe-", i)
	}
	attrs := attrsOf("Manila")
	now := t0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		l.admit(keys[i%len(keys)], now, attrs)
		i++
	}
}
