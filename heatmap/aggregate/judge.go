package aggregate

import (
	"math"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// health is a cell's event state machine.
type health struct {
	degraded     bool
	stale        bool
	pendingSince int64   // ms; 0 = no transition pending
	p95Before    float64 // baseline frozen when the cell degraded
}

// judge runs the hysteresis for one cell and returns the event to emit, if
// any. p95 and loss are over the events window; baseP95 is the history's.
func (h *health) judge(cfg *EventsConfig, nowMs int64, p95, baseP95 float64, samples uint64, loss, attempts float64) (pathstate.Kind, string, bool) {
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
		return pathstate.Degraded, reason, true
	}
	h.degraded = false
	return pathstate.Recovered, reason, true
}
