package aggregate

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// expOf is the exponential histogram of values at scale, as the OTel SDK
// buckets them: value v in index i with base^i < v <= base^(i+1).
func expOf(scale int32, values ...float64) *Exponential {
	var idx []int32
	for _, v := range values {
		idx = append(idx, int32(math.Ceil(math.Log2(v)*math.Exp2(float64(scale))))-1)
	}
	lo, hi := slices.Min(idx), slices.Max(idx)
	e := &Exponential{Scale: scale, Offset: lo, Counts: make([]uint64, hi-lo+1)}
	for _, i := range idx {
		e.Counts[i-lo]++
	}
	return e
}

func nativePoint(stream string, key pathstate.CellKey, start, at time.Time, e *Exponential, sum float64, twin bool) *Point {
	return &Point{Kind: KindLatencyNative, Stream: []byte(stream), Cell: key, Start: start, Time: at, Exp: e, Sum: sum, Twin: twin}
}

// cellBucket is the native bucket of the cell layout holding v.
func cellBucket(v float64) int {
	for k, b := range NativeBounds {
		if v <= b {
			return k
		}
	}
	return NativeBuckets
}

func TestFoldNativeNestsFinerScalesAndRoundsCoarserUp(t *testing.T) {
	dst := make([]uint64, NativeBuckets+1)
	values := []float64{0.01, 3.3, 20, 20.5, 33, 4999, 70000}
	for _, scale := range []int32{3, 5, 8} {
		if !foldNative(dst, expOf(scale, values...)) {
			t.Fatalf("scale %d refused", scale)
		}
		want := make([]uint64, NativeBuckets+1)
		for _, v := range values {
			want[cellBucket(v)]++
		}
		if !slices.Equal(dst, want) {
			t.Errorf("scale %d: folded %v, want each value in the cell bucket that holds it", scale, nonZero(dst))
		}
	}
	// Scale 1: (2^(19/2), 2^10] = (724, 1024] holds 1000; the cell puts it
	// where its upper bound 1024 = 2^(80/8) is.
	if !foldNative(dst, expOf(1, 1000)) || dst[cellBucket(1024)] != 1 {
		t.Errorf("scale 1 bucket of 1000 ms folded to %v, want bucket %d", nonZero(dst), cellBucket(1024))
	}
	if foldNative(dst, &Exponential{Scale: 21}) {
		t.Error("scale 21 (beyond OTLP's 20) accepted")
	}
}

func nonZero(c []uint64) map[int]uint64 {
	m := map[int]uint64{}
	for i, n := range c {
		if n > 0 {
			m[i] = n
		}
	}
	return m
}

func TestNativeQuantileInterpolatesOnTheLogScale(t *testing.T) {
	counts := make([]uint64, NativeBuckets+1)
	k := cellBucket(20)
	counts[k] = 4
	// Rank 2 of 4: half way through the bucket on a log scale, the
	// geometric mean of its bounds (promql.HistogramQuantile).
	want := math.Sqrt(NativeBounds[k-1] * NativeBounds[k])
	if got := nativeQuantile(0.5, counts, 4); math.Abs(got-want) > 1e-9 {
		t.Errorf("p50 %g, want %g", got, want)
	}
	counts[NativeBuckets] = 100
	if got := nativeQuantile(0.99, counts, 104); got != NativeBounds[NativeBuckets-1] {
		t.Errorf("p99 in the +Inf bucket: %g, want the highest bound", got)
	}
	if !math.IsNaN(nativeQuantile(0.5, make([]uint64, NativeBuckets+1), 0)) {
		t.Error("empty histogram: want NaN")
	}
}

// both feeds one probe's classic and native twins of values at t0 after
// a baseline at t0-15s.
func both(a *Aggregator, key pathstate.CellKey, probe string, classic []uint64, values ...float64) {
	start := t0.Add(-time.Hour)
	var sum float64
	for _, v := range values {
		sum += v
	}
	a.Observe(hist(probe+"c", key, start, t0.Add(-15*time.Second), make([]uint64, len(classic)), 0))
	a.Observe(nativePoint(probe+"n", key, start, t0.Add(-15*time.Second), expOf(8, 1), 1, true))
	a.Observe(hist(probe+"c", key, start, t0, classic, sum))
	e := expOf(8, append([]float64{1}, values...)...)
	a.Observe(nativePoint(probe+"n", key, start, t0, e, sum+1, true))
}

func TestTwinSamplesCountOnceAndTakeTheNativeQuantiles(t *testing.T) {
	a, m := testAggregator(t, nil)
	// 12, 15, 18, 33 ms: classic (0,10] (10,20] (20,40] (40,+Inf) = 0, 3, 1, 0.
	both(a, pathMD, "p1", []uint64{0, 3, 1, 0}, 12, 15, 18, 33)
	changed, _, _ := a.Collect(t0.Add(time.Second))
	w := viewOf(t, changed, pathMD.ID()).Wins[0]
	if w.Count != 4 {
		t.Fatalf("count %d, want 4: the twins' samples counted once", w.Count)
	}
	// Rank 2 of 4 is 15 ms, alone in its native bucket after 12's: that
	// bucket's upper bound. The classic buckets would say 16.667.
	if want := round3(NativeBounds[cellBucket(15)]); w.P50 != want {
		t.Errorf("p50 %g, want %g (native)", w.P50, want)
	}
	if want := round3((12.0 + 15 + 18 + 33) / 4); w.Mean != want {
		t.Errorf("mean %g, want %g", w.Mean, want)
	}
	_, dr, _ := a.Drilldown(pathMD.ID(), t0.Add(time.Second), 1)
	if len(dr.Bounds) != NativeBuckets || dr.Columns[0].Count != 4 || dr.Columns[0].Counts[cellBucket(33)] != 1 {
		t.Errorf("drill-down: %d bounds, column count %d, want the native layout with 4 samples", len(dr.Bounds), dr.Columns[0].Count)
	}
	if got := testutil.ToFloat64(m.points[KindLatencyNative][resAccepted]); got != 1 {
		t.Errorf("native points accepted: %g, want 1", got)
	}
}

func TestNativeOnlyIsFoldedIntoTheClassicBucketsForMixedCells(t *testing.T) {
	a, _ := testAggregator(t, nil)
	start := t0.Add(-time.Hour)
	a.Observe(nativePoint("n", pathMD, start, t0.Add(-15*time.Second), expOf(8, 1), 1, false))
	a.Observe(nativePoint("n", pathMD, start, t0, expOf(8, 1, 12, 15, 18, 33), 79, false))
	changed, _, _ := a.Collect(t0.Add(time.Second))
	w := viewOf(t, changed, pathMD.ID()).Wins[0]
	if want := round3(NativeBounds[cellBucket(15)]); w.Count != 4 || w.P50 != want {
		t.Errorf("native only: count %d p50 %g, want 4 and %g", w.Count, w.P50, want)
	}
	// A probe with classic buckets only joins the cell: its sample has no
	// native form, so the window's quantiles come from the classic
	// buckets, the native-only probe's folded into them: 0, 4, 1, 0.
	a.Observe(hist("c", pathMD, start, t0.Add(-15*time.Second), []uint64{0, 0, 0, 0}, 0))
	a.Observe(hist("c", pathMD, start, t0.Add(5*time.Second), []uint64{0, 1, 0, 0}, 11))
	changed, _, _ = a.Collect(t0.Add(6 * time.Second))
	w = viewOf(t, changed, pathMD.ID()).Wins[0]
	if w.Count != 5 || w.P50 != 16.25 {
		t.Errorf("mixed: count %d p50 %g, want 5 and 16.25 (rank 2.5 of 4 in (10,20])", w.Count, w.P50)
	}
	_, dr, _ := a.Drilldown(pathMD.ID(), t0.Add(6*time.Second), 1)
	if !slices.Equal(dr.Bounds, testBounds) || dr.Columns[0].Count != 5 {
		t.Errorf("mixed drill-down: bounds %v count %d, want the classic layout with 5", dr.Bounds, dr.Columns[0].Count)
	}
}

func TestNativeDownscaleIsAnIncreaseNotAReset(t *testing.T) {
	a, m := testAggregator(t, nil)
	start := t0.Add(-time.Hour)
	// The SDK halves the scale when the range outgrows its buckets; the
	// same cumulative observations then sit in coarser buckets.
	a.Observe(nativePoint("n", pathMD, start, t0.Add(-15*time.Second), expOf(6, 20, 21), 41, false))
	a.Observe(nativePoint("n", pathMD, start, t0, expOf(4, 20, 21, 40, 2000), 2081, false))
	if got := testutil.ToFloat64(m.points[KindLatencyNative][resReset]); got != 0 {
		t.Errorf("%g resets, want 0", got)
	}
	changed, _, _ := a.Collect(t0.Add(time.Second))
	if w := viewOf(t, changed, pathMD.ID()).Wins[0]; w.Count != 2 || w.Mean != 1020 {
		t.Errorf("count %d mean %g, want 2 and 1020", w.Count, w.Mean)
	}
}

func TestBadNativePointIsCounted(t *testing.T) {
	a, m := testAggregator(t, nil)
	a.Observe(nativePoint("n", pathMD, t0, t0, nil, 0, false))
	a.Observe(nativePoint("n", pathMD, t0, t0, &Exponential{Scale: -11}, 0, false))
	if got := testutil.ToFloat64(m.points[KindLatencyNative][resBadBuckets]); got != 2 {
		t.Errorf("bad_buckets %g, want 2", got)
	}
	if a.CellCount() != 0 {
		t.Error("a bad point made a cell")
	}
}

// TestNativeBacklogFillsTheOutage is TestBacklogFillsTheOutage for a probe
// recording native histograms, alone and beside its classic twin: the
// backlog goes to the slots it was measured in, in both rings, and the
// drill-down (native, since every sample has native buckets) and the
// windows count each observation once.
func TestNativeBacklogFillsTheOutage(t *testing.T) {
	for _, twin := range []bool{false, true} {
		a, _ := testAggregator(t, nil)
		start := t0.Add(-time.Second)
		send := func(slot int, n uint64) {
			if twin {
				a.Observe(hist("lat", pathMD, start, slotAt(slot), []uint64{0, n, 0, 0}, 15*float64(n)))
			}
			a.Observe(nativePoint("nat", pathMD, start, slotAt(slot), &Exponential{Scale: 3, Offset: 31, Counts: []uint64{n}}, 15*float64(n), twin))
			a.Observe(counter(KindAttempts, "att", pathMD, start, slotAt(slot), float64(n)))
		}
		send(1, 1)
		send(2, 2)
		send(7, 7) // back: slots 3-6 are in this increase
		for s := 3; s <= 6; s++ {
			send(s, uint64(s)) // the backlog
		}
		now := slotAt(8)
		_, dr, _ := a.Drilldown(pathMD.ID(), now, 0)
		if len(dr.Bounds) != NativeBuckets {
			t.Fatalf("twin %v: drill-down in the layout of %d bounds, want native", twin, len(dr.Bounds))
		}
		wantSlots(t, columnsBySlot(t, a, now), map[int][3]float64{1: {1, 1, 0}, 3: {1, 1, 2 + btof(twin)}, 6: {1, 1, 2 + btof(twin)}, 7: {1, 1, 0}})
		changed, _, _ := a.Collect(now)
		v := viewOf(t, changed, pathMD.ID())
		if w := v.Wins[len(v.Wins)-1]; w.Count != 7 || w.P50 != round3(nativeQuantile(0.5, onlyIn(cellBucket(15), 7), 7)) {
			t.Errorf("twin %v: last window %d observations p50 %g, want 7 in the native bucket of 15 ms (14.67, 16]", twin, w.Count, w.P50)
		}
	}
}

func btof(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// onlyIn is a native layout's counts with n in bucket k.
func onlyIn(k int, n uint64) []uint64 {
	c := make([]uint64, NativeBuckets+1)
	c[k] = n
	return c
}

func TestNativeDeltaPointsAreAddedAsTheyAre(t *testing.T) {
	a, _ := testAggregator(t, nil)
	for i := range 2 {
		p := nativePoint("n", pathMD, time.Time{}, t0.Add(time.Duration(i)*15*time.Second), expOf(6, 20, 30), 50, false)
		p.Delta = true
		a.Observe(p)
	}
	changed, _, _ := a.Collect(t0.Add(16 * time.Second))
	if w := viewOf(t, changed, pathMD.ID()).Wins[0]; w.Count != 4 || w.Mean != 25 {
		t.Errorf("count %d mean %g, want 4 and 25", w.Count, w.Mean)
	}
}
