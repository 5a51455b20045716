// Package cumulative derives increases from the points of cumulative series
// (OTLP cumulative sums and histograms, Prometheus counters): which point
// is a retry, which arrived out of order, which one is the first of a
// fresh counter (it counts from zero) or of a long-running one seen for the
// first time (it only sets the base), and which one is a reset. The heatmap
// aggregator and the failure_events connector both need exactly these
// rules; keeping one copy keeps a probe's failure bursts and its heatmap
// loss from disagreeing about the same counter.
//
// Series holds only the timing state; the caller keeps the values (a
// counter's, or a histogram's buckets) and says whether they went down.
// Counter is Series plus a float value, for plain counters.
package cumulative

import "time"

// Verdict says what a point is to its series.
type Verdict uint8

const (
	// Increase: the value minus the previous value is the increase.
	Increase Verdict = iota + 1
	// Fresh: the first point of a series that started recently; the whole
	// value is the increase.
	Fresh
	// Baseline: the first point of a series that has been running for a
	// while (the receiver restarted, or just started watching): it only
	// sets the base, so old increases are not replayed as new ones.
	Baseline
	// Reset: the series restarted (its start time changed, its value went
	// down, or it started after the last point seen); the whole value is
	// the increase.
	Reset
	// Duplicate: the same timestamp as the last point (a retried push).
	// The state is unchanged.
	Duplicate
	// OutOfOrder: older than the last point. The state is unchanged.
	OutOfOrder
)

// Whole reports whether the point's whole value is the increase.
func (v Verdict) Whole() bool { return v == Fresh || v == Reset }

// String names the verdict.
func (v Verdict) String() string {
	switch v {
	case Increase:
		return "increase"
	case Fresh:
		return "fresh"
	case Baseline:
		return "baseline"
	case Reset:
		return "reset"
	case Duplicate:
		return "duplicate"
	case OutOfOrder:
		return "out_of_order"
	}
	return "unknown"
}

// Series is the timing state of one cumulative series. The zero value is a
// series that has seen no point.
type Series struct {
	startNs int64 // start time of the last accepted point; 0 = unknown
	lastNs  int64 // time of the last accepted point; 0 = none yet
}

// Next classifies the point at tNs (Unix nanoseconds) whose series started
// at startNs (0 when unknown, as for samples read back from a Prometheus
// TSDB) and records it unless it is a Duplicate or OutOfOrder.
//
// freshWithin decides a first point: it is Fresh when its start is known
// and at most freshWithin before it (a new probe, or deltatocumulative's
// first point), otherwise Baseline. decreased says whether the point's
// value is below the previous one (for a histogram: any bucket); it is
// ignored for a first point. gap is the time since the previous point
// (0 for a first, duplicate or out-of-order point), to learn the series'
// spacing from (see Interval).
func (s *Series) Next(startNs, tNs int64, freshWithin time.Duration, decreased bool) (v Verdict, gap time.Duration) {
	switch {
	case s.lastNs == 0:
		v = Baseline
		if startNs != 0 && tNs >= startNs && tNs-startNs <= int64(freshWithin) {
			v = Fresh
		}
	case tNs == s.lastNs:
		return Duplicate, 0
	case tNs < s.lastNs:
		return OutOfOrder, 0
	default:
		gap = time.Duration(tNs - s.lastNs)
		switch {
		case startNs != 0 && s.startNs != 0 && startNs != s.startNs:
			v = Reset
		case startNs != 0 && s.startNs == 0 && startNs >= s.lastNs:
			// The series was seeded from a store that keeps no start
			// times, and this one began after the last stored sample: a
			// new series (e.g. deltatocumulative restarted with the
			// collector).
			v = Reset
		case decreased:
			v = Reset
		default:
			v = Increase
		}
	}
	s.startNs, s.lastNs = startNs, tNs
	return v, gap
}

// Last is the time (Unix nanoseconds) of the last recorded point; 0 when
// there is none.
func (s *Series) Last() int64 { return s.lastNs }

// Start is the start time (Unix nanoseconds) of the last recorded point; 0
// when it is unknown or there is none.
func (s *Series) Start() int64 { return s.startNs }

// Counter is a Series with its last value: a plain cumulative counter.
type Counter struct {
	Series
	value float64
}

// Next classifies the point as Series.Next does and returns its increase:
// value minus the previous value for Increase, the whole value for Fresh
// and Reset, 0 otherwise. The value is recorded with the point.
func (c *Counter) Next(startNs, tNs int64, value float64, freshWithin time.Duration) (Verdict, float64, time.Duration) {
	v, gap := c.Series.Next(startNs, tNs, freshWithin, value < c.value)
	var d float64
	switch {
	case v == Increase:
		d = value - c.value
	case v.Whole():
		d = value
	}
	if v != Duplicate && v != OutOfOrder {
		c.value = value
	}
	return v, d, gap
}

// Interval learns the spacing of points (a moving average that follows a
// probe's real cadence and ignores gaps of an hour or more, which are
// outages rather than cadence). The zero value has learnt nothing.
type Interval struct{ d time.Duration }

// Learn takes one gap between consecutive points; zero gaps are ignored.
func (iv *Interval) Learn(gap time.Duration) {
	switch {
	case gap <= 0 || gap >= time.Hour:
	case iv.d == 0:
		iv.d = gap
	default:
		iv.d = (7*iv.d + gap) / 8
	}
}

// Or returns the learnt interval, or def before anything was learnt.
func (iv Interval) Or(def time.Duration) time.Duration {
	if iv.d > 0 {
		return iv.d
	}
	return def
}
