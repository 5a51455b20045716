package cumulative

import (
	"testing"
	"time"
)

// t0 and s are Unix nanoseconds: a counter that started at t0.
const (
	t0 = int64(1_764_000_000) * int64(time.Second)
	s  = int64(time.Second)
)

const fresh = 30 * time.Second

type step struct {
	start, at int64
	value     float64
	verdict   Verdict
	increase  float64
}

func run(t *testing.T, steps []step) {
	t.Helper()
	var c Counter
	for i, st := range steps {
		v, d, _ := c.Next(st.start, st.at, st.value, fresh)
		if v != st.verdict || d != st.increase {
			t.Errorf("step %d (start %d, at %d, value %g): got %v +%g, want %v +%g", i, st.start, st.at, st.value, v, d, st.verdict, st.increase)
		}
	}
}

func TestFirstPoint(t *testing.T) {
	t.Run("fresh counter counts from zero", func(t *testing.T) {
		run(t, []step{{t0, t0 + 15*s, 3, Fresh, 3}})
	})
	t.Run("fresh at the limit", func(t *testing.T) {
		run(t, []step{{t0, t0 + 30*s, 3, Fresh, 3}})
	})
	t.Run("long-running counter only sets the base", func(t *testing.T) {
		run(t, []step{{t0, t0 + 31*s, 500, Baseline, 0}, {t0, t0 + 46*s, 502, Increase, 2}})
	})
	t.Run("unknown start is a base", func(t *testing.T) {
		run(t, []step{{0, t0, 7, Baseline, 0}, {0, t0 + 15*s, 9, Increase, 2}})
	})
	t.Run("start after the point is a base", func(t *testing.T) {
		run(t, []step{{t0 + 20*s, t0, 1, Baseline, 0}})
	})
}

func TestDuplicatesAndOutOfOrderLeaveTheState(t *testing.T) {
	run(t, []step{
		{t0, t0 + 15*s, 1, Fresh, 1},
		{t0, t0 + 30*s, 4, Increase, 3},
		{t0, t0 + 30*s, 4, Duplicate, 0},     // a retried push
		{t0, t0 + 15*s, 1, OutOfOrder, 0},    // late
		{t0, t0 + 15*s, 1000, OutOfOrder, 0}, // late, even with another value
		{t0, t0 + 45*s, 6, Increase, 2},      // measured against 4, not 1000
	})
}

func TestResets(t *testing.T) {
	t.Run("start time changes", func(t *testing.T) {
		// The value went up, but the counter restarted: all of it is new.
		run(t, []step{{t0, t0 + 15*s, 5, Fresh, 5}, {t0 + 20*s, t0 + 30*s, 8, Reset, 8}, {t0 + 20*s, t0 + 45*s, 9, Increase, 1}})
	})
	t.Run("value goes down", func(t *testing.T) {
		run(t, []step{{0, t0, 50, Baseline, 0}, {0, t0 + 15*s, 2, Reset, 2}, {0, t0 + 30*s, 3, Increase, 1}})
	})
	t.Run("seeded from a store without start times", func(t *testing.T) {
		// The last stored sample at t0+15s; the live series started after
		// it, so it is a new series although its value is higher.
		run(t, []step{{0, t0 + 15*s, 10, Baseline, 0}, {t0 + 20*s, t0 + 30*s, 12, Reset, 12}})
	})
	t.Run("seeded, same series continues", func(t *testing.T) {
		run(t, []step{{0, t0 + 15*s, 10, Baseline, 0}, {t0, t0 + 30*s, 12, Increase, 2}})
	})
}

func TestSeriesReportsGapsAndDecreases(t *testing.T) {
	var sr Series
	if v, gap := sr.Next(t0, t0+s, fresh, true); v != Fresh || gap != 0 {
		t.Errorf("first: %v gap %v; a decrease means nothing without a previous value", v, gap)
	}
	if v, gap := sr.Next(t0, t0+16*s, fresh, false); v != Increase || gap != 15*time.Second {
		t.Errorf("second: %v gap %v", v, gap)
	}
	if v, _ := sr.Next(t0, t0+31*s, fresh, true); v != Reset {
		t.Errorf("a histogram bucket going down: %v, want reset", v)
	}
	if sr.Last() != t0+31*s {
		t.Errorf("last %d", sr.Last())
	}
	if v, gap := sr.Next(t0, t0+31*s, fresh, false); v != Duplicate || gap != 0 {
		t.Errorf("duplicate: %v gap %v", v, gap)
	}
}

func TestInterval(t *testing.T) {
	var iv Interval
	if got := iv.Or(15 * time.Second); got != 15*time.Second {
		t.Errorf("nothing learnt: %v", got)
	}
	iv.Learn(0)
	iv.Learn(2 * time.Hour) // an outage, not the cadence
	if got := iv.Or(15 * time.Second); got != 15*time.Second {
		t.Errorf("outage learnt: %v", got)
	}
	iv.Learn(10 * time.Second)
	if got := iv.Or(0); got != 10*time.Second {
		t.Errorf("first gap: %v", got)
	}
	iv.Learn(18 * time.Second) // (7·10 + 18) / 8
	if got := iv.Or(0); got != 11*time.Second {
		t.Errorf("moving average: %v, want 11s", got)
	}
}

func TestVerdicts(t *testing.T) {
	for v, whole := range map[Verdict]bool{
		Increase: false, Fresh: true, Reset: true, Baseline: false, Duplicate: false, OutOfOrder: false,
	} {
		if v.Whole() != whole || v.String() == "unknown" {
			t.Errorf("%v: whole %v", v, v.Whole())
		}
	}
}
