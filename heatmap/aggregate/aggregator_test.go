package aggregate

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

var testBounds = []float64{10, 20, 40}

var pathMD = pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}

// t0 is aligned to a 15 s slot so tests can reason in whole slots.
var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

func testAggregator(t testing.TB, mod func(*Config)) (*Aggregator, *metrics) {
	t.Helper()
	cfg := Config{Bounds: testBounds}
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, a.m
}

func hist(stream string, key pathstate.CellKey, start, at time.Time, counts []uint64, sum float64) *Point {
	return &Point{Kind: KindLatency, Stream: []byte(stream), Cell: key, Start: start, Time: at,
		Bounds: testBounds, Counts: counts, Sum: sum}
}

func counter(kind Kind, stream string, key pathstate.CellKey, start, at time.Time, v float64) *Point {
	return &Point{Kind: kind, Stream: []byte(stream), Cell: key, Start: start, Time: at, Value: v}
}

func viewOf(t *testing.T, changed []Changed, id string) *View {
	t.Helper()
	for _, c := range changed {
		if c.View.ID == id {
			return c.View
		}
	}
	t.Fatalf("cell %s not in changed set (%d cells)", id, len(changed))
	return nil
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestBucketQuantileHandComputed(t *testing.T) {
	// Buckets (0,10] (10,20] (20,40] (40,+Inf): 2, 6, 2, 0 observations.
	counts := []uint64{2, 6, 2, 0}
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 15},  // rank 5: 3 of 6 into (10,20]
		{0.9, 30},  // rank 9: 1 of 2 into (20,40]
		{0.99, 39}, // rank 9.9: 1.9 of 2 into (20,40]
		{0.1, 5},   // rank 1: 1 of 2 into (0,10]
	} {
		if got := bucketQuantile(tc.q, testBounds, counts); !near(got, tc.want) {
			t.Errorf("q=%g: got %g, want %g", tc.q, got, tc.want)
		}
	}
	// A rank in the +Inf bucket reports the highest finite bound, as Prometheus does.
	if got := bucketQuantile(0.5, testBounds, []uint64{0, 0, 0, 5}); got != 40 {
		t.Errorf("+Inf bucket: got %g, want 40", got)
	}
	if got := bucketQuantile(0.5, testBounds, []uint64{0, 0, 0, 0}); !math.IsNaN(got) {
		t.Errorf("empty: got %g, want NaN", got)
	}
}

func TestDeltasWindowsLossAndDuplicates(t *testing.T) {
	a, m := testAggregator(t, nil)
	start := t0.Add(-10 * time.Second) // a fresh probe: its first point counts
	a.Observe(hist("h", pathMD, start, t0, []uint64{1, 2, 0, 0}, 35))
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0, 4))
	a.Observe(counter(KindFailures, "f", pathMD, start, t0, 1))
	// 15 s later, cumulative: +1 in (0,10], +3 in (10,20], +2 in (20,40].
	t1 := t0.Add(15 * time.Second)
	a.Observe(hist("h", pathMD, start, t1, []uint64{2, 5, 2, 0}, 35+5+45+60))
	a.Observe(counter(KindAttempts, "a", pathMD, start, t1, 10))
	a.Observe(counter(KindFailures, "f", pathMD, start, t1, 1))
	// The same points again (an OTLP retry) must not count twice.
	a.Observe(hist("h", pathMD, start, t1, []uint64{2, 5, 2, 0}, 145))
	a.Observe(counter(KindAttempts, "a", pathMD, start, t1, 10))
	// And an older one (out of order) is ignored.
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0, 4))

	changed, _, _ := a.Collect(t1.Add(time.Second))
	v := viewOf(t, changed, pathMD.ID())
	w1 := v.Wins[0] // 1m
	// Merged: (0,10]=2 (10,20]=5 (20,40]=2: N=9. p50 rank 4.5 → 10+10·2.5/5 = 15.
	if w1.Count != 9 || !near(w1.P50, 15) {
		t.Fatalf("1m window: count %d p50 %g, want 9 and 15", w1.Count, w1.P50)
	}
	// p90 rank 8.1 → 20+20·1.1/2 = 31.
	if !near(w1.P90, 31) {
		t.Errorf("p90 = %g, want 31", w1.P90)
	}
	if !near(w1.Mean, round3(145.0/9)) { // reported to 1 µs
		t.Errorf("mean = %g, want %g", w1.Mean, 145.0/9)
	}
	if w1.Attempts != 10 || w1.Failures != 1 || !near(w1.Loss, 0.1) {
		t.Errorf("attempts %g failures %g loss %g, want 10, 1, 0.1", w1.Attempts, w1.Failures, w1.Loss)
	}
	if got := testutil.ToFloat64(m.points[KindLatency][resDuplicate]); got != 1 {
		t.Errorf("duplicate histogram points counted %g, want 1", got)
	}
	if got := testutil.ToFloat64(m.points[KindAttempts][resOutOfOrder]); got != 1 {
		t.Errorf("out-of-order counter points counted %g, want 1", got)
	}
}

func TestFirstPointOfLongRunningStreamIsOnlyABase(t *testing.T) {
	a, m := testAggregator(t, nil)
	start := t0.Add(-24 * time.Hour) // a probe that ran all day before we saw it
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0, 5000))
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0.Add(15*time.Second), 5004))
	changed, _, _ := a.Collect(t0.Add(16 * time.Second))
	if got := viewOf(t, changed, pathMD.ID()).Wins[0].Attempts; got != 4 {
		t.Fatalf("attempts = %g, want 4 (only the delta after the first point)", got)
	}
	if got := testutil.ToFloat64(m.points[KindAttempts][resBaseline]); got != 1 {
		t.Errorf("baseline points %g, want 1", got)
	}
}

func TestCounterResets(t *testing.T) {
	a, m := testAggregator(t, nil)
	start := t0.Add(-24 * time.Hour)
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0, 100))
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0.Add(15*time.Second), 110)) // +10
	// The probe restarted: the value went down; like Prometheus's rate, the
	// whole new value is the increase.
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0.Add(30*time.Second), 3)) // +3
	// A new start timestamp with a higher value is a reset too: +150, not +147.
	restart := t0.Add(40 * time.Second)
	a.Observe(counter(KindAttempts, "a", pathMD, restart, t0.Add(45*time.Second), 150))
	// Histogram reset: bucket counts fall.
	a.Observe(hist("h", pathMD, start, t0, []uint64{10, 10, 10, 0}, 500))
	a.Observe(hist("h", pathMD, start, t0.Add(15*time.Second), []uint64{1, 0, 0, 0}, 5))
	changed, _, _ := a.Collect(t0.Add(50 * time.Second))
	w := viewOf(t, changed, pathMD.ID()).Wins[0]
	if w.Attempts != 163 {
		t.Errorf("attempts = %g, want 10+3+150 = 163", w.Attempts)
	}
	if w.Count != 1 || !near(w.Mean, 5) {
		t.Errorf("histogram after reset: count %d mean %g, want 1 and 5", w.Count, w.Mean)
	}
	if got := testutil.ToFloat64(m.points[KindAttempts][resReset]); got != 2 {
		t.Errorf("counter resets counted %g, want 2", got)
	}
}

func TestWindowExpiry(t *testing.T) {
	a, _ := testAggregator(t, nil)
	start := t0.Add(-5 * time.Second)
	a.Observe(hist("h", pathMD, start, t0, []uint64{0, 4, 0, 0}, 60))
	// 2 minutes later: out of the 1 m window, still in 5 m and 15 m.
	changed, _, _ := a.Collect(t0.Add(2 * time.Minute))
	v := viewOf(t, changed, pathMD.ID())
	if v.Wins[0].Count != 0 || !math.IsNaN(v.Wins[0].P50) {
		t.Errorf("1m window after 2m: count %d p50 %g, want 0 and NaN", v.Wins[0].Count, v.Wins[0].P50)
	}
	if v.Wins[1].Count != 4 || v.Wins[2].Count != 4 {
		t.Errorf("5m/15m windows: %d/%d, want 4/4", v.Wins[1].Count, v.Wins[2].Count)
	}
	// 10 minutes later: only 15 m still has it.
	changed, _, _ = a.Collect(t0.Add(10 * time.Minute))
	v = viewOf(t, changed, pathMD.ID())
	if v.Wins[1].Count != 0 || v.Wins[2].Count != 4 {
		t.Errorf("after 10m: 5m %d 15m %d, want 0 and 4", v.Wins[1].Count, v.Wins[2].Count)
	}
	// The baseline (last hour) still knows the path.
	if !near(v.BaseP50, 15) {
		t.Errorf("baseline p50 = %g, want 15", v.BaseP50)
	}
	// After the expiry (1 h without data) the cell is gone.
	_, removed, _ := a.Collect(t0.Add(61 * time.Minute))
	if len(removed) != 1 || removed[0] != pathMD.ID() || a.CellCount() != 0 {
		t.Fatalf("removed %v, cells %d; want the cell expired", removed, a.CellCount())
	}
}

func TestStalenessAndEvents(t *testing.T) {
	a, _ := testAggregator(t, func(c *Config) { c.Events.Hold = 30 * time.Second })
	start := t0.Add(-5 * time.Second)
	var cum [4]uint64
	var sum float64
	ts := t0
	feed := func(bucket int, n uint64, lat float64) {
		cum[bucket] += n
		sum += float64(n) * lat
		a.Observe(hist("h", pathMD, start, ts, append([]uint64(nil), cum[:]...), sum))
	}
	var events []pathstate.Event
	step := func() {
		_, _, ev := a.Collect(ts.Add(time.Second))
		events = append(events, ev...)
		ts = ts.Add(15 * time.Second)
	}
	// 40 minutes of a healthy path: 10 samples per 15 s in (0,10].
	for range 160 {
		feed(0, 10, 5)
		step()
	}
	if len(events) != 0 {
		t.Fatalf("healthy path produced events: %v", events)
	}
	// Latency jumps into (20,40]: p95 over 5m rises far above the baseline.
	for range 8 {
		feed(2, 10, 30)
		step()
	}
	if len(events) != 1 || events[0].Kind != pathstate.Degraded || events[0].Reason != "latency" {
		t.Fatalf("events after degradation: %v, want one degraded/latency", events)
	}
	if e := events[0]; !(e.P95Before <= 10) || !(e.P95After > 20) {
		t.Errorf("degraded numbers: p95 before %g after %g", e.P95Before, e.P95After)
	}
	// A single healthy step is not yet a recovery (5 m window still slow).
	feed(0, 10, 5)
	step()
	if len(events) != 1 {
		t.Fatalf("recovered too early: %v", events)
	}
	for range 30 {
		feed(0, 10, 5)
		step()
	}
	if len(events) != 2 || events[1].Kind != pathstate.Recovered {
		t.Fatalf("events after recovery: %v, want degraded then recovered", events)
	}
	// Silence: with a learnt 15 s interval the cell is stale after 30 s.
	last := ts.Add(-15 * time.Second)
	_, _, ev := a.Collect(last.Add(29 * time.Second))
	if len(ev) != 0 {
		t.Fatalf("stale too early: %v", ev)
	}
	changed, _, ev := a.Collect(last.Add(31 * time.Second))
	if len(ev) != 1 || ev[0].Kind != pathstate.Stale {
		t.Fatalf("want one stale event, got %v", ev)
	}
	if v := viewOf(t, changed, pathMD.ID()); !v.Stale || v.State != "stale" {
		t.Errorf("view stale=%v state=%s", v.Stale, v.State)
	}
	ts = last.Add(45 * time.Second)
	feed(0, 10, 5)
	_, _, ev = a.Collect(ts.Add(time.Second))
	if len(ev) != 1 || ev[0].Kind != pathstate.Back {
		t.Fatalf("want one back event, got %v", ev)
	}
}

func TestLimitsAndBadInput(t *testing.T) {
	a, m := testAggregator(t, func(c *Config) { c.MaxCells = 1 })
	a.Observe(hist("h1", pathMD, time.Time{}, t0, []uint64{1, 0, 0, 0}, 1))
	other := pathMD
	other.Carrier = "Smart"
	a.Observe(hist("h2", other, time.Time{}, t0, []uint64{1, 0, 0, 0}, 1))
	if got := testutil.ToFloat64(m.points[KindLatency][resCellLimit]); got != 1 {
		t.Errorf("cell limit drops %g, want 1", got)
	}
	a.Observe(&Point{Kind: KindLatency, Stream: []byte("x"), Cell: pathMD, Time: t0, Bounds: testBounds, Counts: []uint64{1}})
	if got := testutil.ToFloat64(m.points[KindLatency][resBadBuckets]); got != 1 {
		t.Errorf("bad bucket points %g, want 1", got)
	}
	a.Observe(counter(KindAttempts, "y", pathstate.CellKey{SrcCity: "Manila"}, time.Time{}, t0, 1))
	if got := testutil.ToFloat64(m.points[KindAttempts][resBadLabels]); got != 1 {
		t.Errorf("bad label points %g, want 1", got)
	}
}

func TestFoldForeignBounds(t *testing.T) {
	a, _ := testAggregator(t, nil)
	dst := make([]uint64, 4)
	// Finer source bounds fold into the cell's: (0,5]+(5,10] → (0,10], etc.
	if !a.fold(dst, []float64{5, 10, 15, 20, 40, 80}, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatal("fold refused valid bounds")
	}
	if want := []uint64{3, 7, 5, 13}; !equalU(dst, want) {
		t.Fatalf("folded %v, want %v", dst, want)
	}
}

func equalU(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRingMemoryIsFixed(t *testing.T) {
	a, _ := testAggregator(t, func(c *Config) { c.Bounds = DefaultBounds })
	c := a.cellFor(pathMD)
	before := c.ring.memBytes()
	start := t0.Add(-5 * time.Second)
	counts := make([]uint64, len(DefaultBounds)+1)
	for i := range 1000 { // more than four ring turns
		counts[i%len(counts)]++
		a.Observe(&Point{Kind: KindLatency, Stream: []byte("h"), Cell: pathMD, Start: start,
			Time: t0.Add(time.Duration(i) * 15 * time.Second), Bounds: DefaultBounds, Counts: append([]uint64(nil), counts...), Sum: float64(i)})
	}
	if after := c.ring.memBytes(); after != before {
		t.Fatalf("ring grew from %d to %d bytes", before, after)
	}
	// Running sums equal a recount of the slots after many wraps.
	w := c.ring.wins[2]
	var n uint64
	buf := make([]uint64, c.ring.nb)
	for s := c.ring.head - w.slots + 1; s <= c.ring.head; s++ {
		c.ring.slot(s, buf)
		for _, x := range buf {
			n += x
		}
	}
	if w.count() != n || n != 60 {
		t.Fatalf("15m running count %d, recount %d, want 60", w.count(), n)
	}
}

// TestJitterPerWindowAndColumn: a cell's jitter is the window's summed
// |ΔRTT| over its summed pairs (so a round of many pairs weighs more than
// one of few, as in one long round), from cumulative counters like loss;
// without a pair it is NaN, never 0.
func TestJitterPerWindowAndColumn(t *testing.T) {
	a, _ := testAggregator(t, nil)
	start := t0.Add(-10 * time.Second)
	a.Observe(counter(KindAttempts, "a", pathMD, start, t0, 5))
	a.Observe(counter(KindFailures, "f", pathMD, start, t0, 0))
	a.Observe(counter(KindJitter, "j", pathMD, start, t0, 0))
	a.Observe(counter(KindJitterPairs, "p", pathMD, start, t0, 0))
	changed, _, _ := a.Collect(t0.Add(time.Second))
	if v := viewOf(t, changed, pathMD.ID()); !math.IsNaN(v.Wins[0].Jitter) {
		t.Fatalf("jitter without a pair: %g, want NaN", v.Wins[0].Jitter)
	}
	// Next slot: a round of 5 with 4 pairs summing 8 ms; the slot after:
	// a round of 5 with one loss, 3 pairs summing 12 ms.
	t1, t2 := t0.Add(15*time.Second), t0.Add(30*time.Second)
	for _, p := range []*Point{
		counter(KindAttempts, "a", pathMD, start, t1, 10), counter(KindJitter, "j", pathMD, start, t1, 8), counter(KindJitterPairs, "p", pathMD, start, t1, 4),
		counter(KindAttempts, "a", pathMD, start, t2, 15), counter(KindFailures, "f", pathMD, start, t2, 1),
		counter(KindJitter, "j", pathMD, start, t2, 20), counter(KindJitterPairs, "p", pathMD, start, t2, 7),
		// A retry of the last jitter point counts once.
		counter(KindJitter, "j", pathMD, start, t2, 20),
	} {
		a.Observe(p)
	}
	changed, _, _ = a.Collect(t2.Add(time.Second))
	w := viewOf(t, changed, pathMD.ID()).Wins[0]
	if !near(w.Jitter, round3(20.0/7)) || !near(w.Loss, round6(1.0/15)) {
		t.Errorf("1m window: jitter %g loss %g, want %g and %g", w.Jitter, w.Loss, round3(20.0/7), round6(1.0/15))
	}
	_, drill, ok := a.Drilldown(pathMD.ID(), t2.Add(time.Second), 3)
	cols := drill.Columns
	if !ok {
		t.Fatal("no drilldown")
	}
	want := []float64{math.NaN(), 2, 4} // no pair; 8/4; 12/3
	for i, c := range cols {
		if !sameFloat(c.Jitter, want[i]) {
			t.Errorf("column %d jitter %g, want %g", i, c.Jitter, want[i])
		}
	}
	if !near(cols[2].Loss, 0.2) {
		t.Errorf("last column loss %g, want 0.2", cols[2].Loss)
	}
}
