package aggregate

import (
	"testing"
	"time"
)

// slotAt is the time of the middle of slot i after t0 (15 s slots).
func slotAt(i int) time.Time { return t0.Add(time.Duration(i)*15*time.Second + 7*time.Second) }

// columnsBySlot returns the drill-down's columns keyed by slot number
// after t0.
func columnsBySlot(t *testing.T, a *Aggregator, now time.Time) map[int]Column {
	t.Helper()
	_, drill, ok := a.Drilldown(pathMD.ID(), now, 0)
	if !ok {
		t.Fatal("no cell")
	}
	out := map[int]Column{}
	for _, c := range drill.Columns {
		if c.T >= t0.UnixMilli() {
			out[int((c.T-t0.UnixMilli())/15000)] = c
		}
	}
	return out
}

// point sends one interval's cumulative latency histogram (n observations
// so far, all in the first bucket) and attempts (n) of one run.
func point(a *Aggregator, start time.Time, slot int, n uint64) {
	a.Observe(hist("lat", pathMD, start, slotAt(slot), []uint64{n, 0, 0, 0}, 5*float64(n)))
	a.Observe(counter(KindAttempts, "att", pathMD, start, slotAt(slot), float64(n)))
}

// wantSlots checks each listed slot's count, attempts and late points.
func wantSlots(t *testing.T, cols map[int]Column, want map[int][3]float64) {
	t.Helper()
	for s, w := range want {
		c := cols[s]
		if float64(c.Count) != w[0] || c.Attempts != w[1] || float64(c.Late) != w[2] {
			t.Errorf("slot %d: count %d, attempts %g, late %d; want %v", s, c.Count, c.Attempts, c.Late, w)
		}
	}
}

// TestBacklogFillsTheOutage: a probe's queued backlog, delivered after the
// first fresh point following an outage, goes to the slots it was measured
// in, marked late, and is taken back from the recovery slot that had the
// whole outage's increase; the windows count every observation once.
func TestBacklogFillsTheOutage(t *testing.T) {
	a, _ := testAggregator(t, nil)
	start := t0.Add(-time.Second)
	point(a, start, 1, 1)
	point(a, start, 2, 2)
	point(a, start, 7, 7) // the collector is back: slots 3-6 are in this increase
	for s := 3; s <= 6; s++ {
		point(a, start, s, uint64(s)) // the backlog, oldest first
	}
	now := slotAt(8)
	// A live drill-down re-sends the columns from slot 3 on, once.
	if n := a.TakeBackfilled(pathMD.ID(), now); n != 6 {
		t.Errorf("TakeBackfilled = %d, want 6 (slots 3 to 8)", n)
	}
	if n := a.TakeBackfilled(pathMD.ID(), now); n != 0 {
		t.Errorf("TakeBackfilled again = %d, want 0", n)
	}
	cols := columnsBySlot(t, a, now)
	wantSlots(t, cols, map[int][3]float64{1: {1, 1, 0}, 2: {1, 1, 0}, 3: {1, 1, 2}, 4: {1, 1, 2}, 5: {1, 1, 2}, 6: {1, 1, 2}, 7: {1, 1, 0}})
	changed, _, _ := a.Collect(now)
	v := viewOf(t, changed, pathMD.ID())
	for i, win := range a.Config().Windows {
		if win < 5*time.Minute {
			continue // does not reach back to slot 1
		}
		if w := v.Wins[i]; w.Count != 7 || w.Attempts != 7 {
			t.Errorf("%v window: %d observations, %g attempts; want 7 and 7", win, w.Count, w.Attempts)
		}
	}
	// A late point of the same stream already covered is out of order.
	point(a, start, 5, 5)
	if got := columnsBySlot(t, a, now)[5]; got.Count != 1 || got.Late != 2 {
		t.Errorf("a repeated backlog point changed slot 5: %+v", got)
	}
}

// TestBacklogOfAProbeRestartedDuringTheOutage: the probe restarted in slot
// 4 of the outage, so its counters started again (a new start time); the
// first run's queued points and the second run's both go to their slots,
// and only the second run's are taken back from the recovery slot (its
// increase, a reset, holds only the second run's observations).
func TestBacklogOfAProbeRestartedDuringTheOutage(t *testing.T) {
	a, _ := testAggregator(t, nil)
	run1, run2 := t0.Add(-time.Second), slotAt(4)
	point(a, run1, 1, 1)
	point(a, run1, 2, 2)
	point(a, run2, 7, 3) // back, second run: a reset with 3 observations
	point(a, run1, 3, 3) // the backlog: the first run's last export
	point(a, run2, 5, 1) // then the second run's
	point(a, run2, 6, 2)
	cols := columnsBySlot(t, a, slotAt(8))
	wantSlots(t, cols, map[int][3]float64{1: {1, 1, 0}, 2: {1, 1, 0}, 3: {1, 1, 2}, 4: {0, 0, 0}, 5: {1, 1, 2}, 6: {1, 1, 2}, 7: {1, 1, 0}})
}

// TestNoBacklogKeepsTheStep: without a queue nothing follows the recovery
// point, whose slot keeps the outage's whole increase, as before.
func TestNoBacklogKeepsTheStep(t *testing.T) {
	a, _ := testAggregator(t, nil)
	start := t0.Add(-time.Second)
	point(a, start, 1, 1)
	point(a, start, 7, 7)
	wantSlots(t, columnsBySlot(t, a, slotAt(8)), map[int][3]float64{1: {1, 1, 0}, 4: {0, 0, 0}, 7: {6, 6, 0}})
}
