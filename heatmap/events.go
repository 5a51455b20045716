package heatmap

import (
	"fmt"
	"math"
	"time"
)

// EventKind names a path state change.
type EventKind string

// The path state changes a subscriber is told about.
const (
	// EventDegraded: latency (p95) or loss rose far above the cell's own
	// baseline and stayed there for the hold time.
	EventDegraded EventKind = "degraded"
	// EventRecovered: a degraded cell came back near its baseline.
	EventRecovered EventKind = "recovered"
	// EventStale: no data for more than the stale threshold.
	EventStale EventKind = "stale"
	// EventBack: a stale cell receives data again.
	EventBack EventKind = "back"
)

// Event is one path state change, with the numbers that caused it.
type Event struct {
	Kind EventKind
	// Time is when the change was decided (the aggregator's clock).
	Time time.Time
	Cell CellKey
	// Reason says which condition fired, e.g. "latency", "loss",
	// "latency+loss", "no data for 45s".
	Reason string
	// Window is the window the numbers below were measured over.
	Window time.Duration
	// P95Before is the baseline p95 (ms): the last hour's p95 when the cell
	// degraded; for recovered, the same baseline it was judged against.
	P95Before float64
	// P95After is the p95 (ms) over Window at the time of the change.
	P95After float64
	// Loss is the loss ratio (0..1) over Window; NaN without attempts.
	Loss float64
	// Samples is the number of latency samples in Window.
	Samples uint64
	// LastSeen is the time of the newest data point of the cell.
	LastSeen time.Time
}

// String renders the event for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s %s→%s %s/%s: %s (p95 %.1f→%.1f ms, loss %.3f, %d samples over %v)",
		e.Kind, e.Cell.SrcCity, e.Cell.DstCity, e.Cell.Carrier, e.Cell.NetworkType, e.Reason,
		e.P95Before, e.P95After, e.Loss, e.Samples, e.Window)
}

// health is a cell's event state machine.
type health struct {
	degraded     bool
	stale        bool
	pendingSince int64   // ms; 0 = no transition pending
	p95Before    float64 // baseline frozen when the cell degraded
}

// judge runs the hysteresis for one cell and returns the event to emit, if
// any. p95 and loss are over the events window; baseP95 is the history's.
func (h *health) judge(cfg *EventsConfig, nowMs int64, p95, baseP95 float64, samples uint64, loss, attempts float64) (EventKind, string, bool) {
	minN := float64(cfg.MinSamples)
	latOK := samples >= uint64(cfg.MinSamples) && !math.IsNaN(p95)
	lossOK := attempts >= minN && !math.IsNaN(loss)
	var want bool
	var reason string
	if !h.degraded {
		lat := latOK && !math.IsNaN(baseP95) && p95 > baseP95*cfg.DegradedRatio && p95-baseP95 >= cfg.DegradedMinDelta
		ls := lossOK && loss >= cfg.DegradedLoss
		want = lat || ls
		switch {
		case lat && ls:
			reason = "latency+loss"
		case lat:
			reason = "latency"
		case ls:
			reason = "loss"
		}
	} else {
		// The leave thresholds (RecoveredRatio, RecoveredMinDelta) sit below
		// the enter thresholds (DegradedRatio, DegradedMinDelta) for every
		// baseline, so a p95 between them changes nothing either way.
		latBack := !latOK || math.IsNaN(h.p95Before) || p95 <= h.p95Before*cfg.RecoveredRatio || p95-h.p95Before <= cfg.RecoveredMinDelta
		lossBack := !lossOK || loss <= cfg.RecoveredLoss
		// Recovery needs evidence: at least one of the two measured.
		want = latBack && lossBack && (latOK || lossOK)
		reason = "back near baseline"
	}
	if !want {
		h.pendingSince = 0
		return "", "", false
	}
	if h.pendingSince == 0 {
		h.pendingSince = nowMs
	}
	if nowMs-h.pendingSince < cfg.Hold.Milliseconds() {
		return "", "", false
	}
	h.pendingSince = 0
	if !h.degraded {
		h.degraded = true
		h.p95Before = baseP95
		return EventDegraded, reason, true
	}
	h.degraded = false
	return EventRecovered, reason, true
}
