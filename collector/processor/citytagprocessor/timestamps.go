package citytagprocessor

import (
	"context"
	"strconv"
	"time"

	"github.com/bantay-noc/bantay/internal/events"
)

// A point's time must lie within [now - max_age, now + max_ahead] of the
// collector's clock. The store's TSDB accepts a sample only if it is no
// older than its newest sample of any series minus the out-of-order window
// (storage::out_of_order_window of the bantay extension, 30m by default):
// one point two hours ahead moved that newest time forward for everyone,
// and from then on every other probe's current data was refused as "too
// old sample" (permanently: the head's max time is in the WAL and survives
// a restart). With max_ahead + max_age no larger than the window, every
// point citytag lets through is within it, whatever another probe sends.
// The defaults, 5m and 25m, add up to the store's 30m.

// Rejection reasons of the timestamp bounds.
const (
	reasonTimestampInFuture = "timestamp_in_future"
	reasonTimestampTooOld   = "timestamp_too_old"
)

// warnClockSkew keys the rate limit of the clock-skew warning (log line
// and event) apart from the rejections it comes with.
const warnClockSkew = "clock_skew"

// timeWindow is one request's bounds, in Unix nanoseconds, and what one
// resource (a probe uplink) of it has shown of the probe's clock.
type timeWindow struct {
	now, oldest, newest int64
	maxAhead, maxAge    time.Duration
	latest              int64 // the resource's newest point; 0: none yet
	// seen is the newest point within bounds of the resource's uplink
	// before this request, late counts the points within bounds older
	// than it, and inBounds is the newest point within bounds of this one.
	seen, late, inBounds int64
}

func (t *cityTagger) window() timeWindow {
	now := t.now().UnixNano()
	return timeWindow{now: now, oldest: now - int64(t.maxAge), newest: now + int64(t.maxAhead), maxAhead: t.maxAhead, maxAge: t.maxAge}
}

// check records ts as seen and says why it is out of bounds, if it is.
func (w *timeWindow) check(ts int64) (string, string) {
	w.latest = max(w.latest, ts)
	switch {
	case ts > w.newest:
		return reasonTimestampInFuture, "point time " + formatNanos(ts) + " is " + durationText(ts-w.now) +
			" ahead of the collector's clock (max_ahead " + w.maxAhead.String() + "): the probe's clock is fast"
	case ts < w.oldest:
		return reasonTimestampTooOld, "point time " + formatNanos(ts) + " is " + durationText(w.now-ts) +
			" behind the collector's clock (max_age " + w.maxAge.String() + ", within the store's out-of-order window)"
	}
	if ts < w.seen {
		w.late++
	}
	w.inBounds = max(w.inBounds, ts)
	return "", ""
}

// uplinkOf keys the newest point seen per registered probe uplink; the
// registry bounds how many there are.
type uplinkOf struct {
	probe string
	uplinkKey
}

// startLate prepares w for one resource of pl: the points older than the
// newest one already seen from that uplink will be counted as late.
func (t *cityTagger) startLate(pl placement, w *timeWindow) {
	t.newestMu.Lock()
	w.seen = t.newest[uplinkOf{pl.probe, uplinkKey{pl.carrier, pl.networkType}}]
	t.newestMu.Unlock()
	w.latest, w.late, w.inBounds = 0, 0, 0
}

// reportLate counts the resource's late points for its probe and records
// its newest point. A late point is one a probe measured before the newest
// point it has already delivered over the same uplink: a store-and-forward
// backlog, which the probe sends after fresh data (docs/probe.md), so the
// counter's rate is the backlog a probe is catching up on. Rejected points
// are not counted and do not move the mark: a point from a fast clock, an
// hour ahead, would otherwise make every later point late.
func (t *cityTagger) reportLate(ctx context.Context, pl placement, w *timeWindow) {
	if w.inBounds == 0 {
		return
	}
	k := uplinkOf{pl.probe, uplinkKey{pl.carrier, pl.networkType}}
	t.newestMu.Lock()
	t.newest[k] = max(t.newest[k], w.inBounds)
	t.newestMu.Unlock()
	if w.late > 0 {
		t.latePoints.Add(ctx, w.late, t.probeAttr[pl.probe])
	}
}

// skew is how far the resource's newest point is ahead of the collector's
// clock (negative: behind), and whether it had any point.
func (w *timeWindow) skew() (time.Duration, bool) {
	if w.latest == 0 {
		return 0, false
	}
	return time.Duration(w.latest - w.now), true
}

// reportSkew makes a registered probe's clock visible: the gauge holds the
// skew of its newest point, and a probe ahead by more than max_ahead gets a
// warning (log line and probe_warning event) once per log_interval.
//
// A request whose points are all late (a replayed backlog, older than what
// the uplink already delivered) says nothing about the probe's clock and
// leaves the gauge alone.
func (t *cityTagger) reportSkew(ctx context.Context, pl placement, w *timeWindow) {
	skew, ok := w.skew()
	if !ok || w.latest < w.seen {
		return
	}
	t.clockSkew.Record(ctx, skew.Seconds(), t.probeAttr[pl.probe])
	if skew <= w.maxAhead {
		return
	}
	detail := "newest point is " + durationText(int64(skew)) + " ahead of the collector's clock (max_ahead " +
		w.maxAhead.String() + "); its points beyond are rejected as " + reasonTimestampInFuture
	t.warn(pl, warnClockSkew, detail, map[string]any{events.AttrClockSkewSeconds: skew.Seconds()})
}

// warn logs and publishes a warning about data citytag stored, rate
// limited like rejections.
func (t *cityTagger) warn(pl placement, reason, detail string, attrs map[string]any) {
	if !t.logOnce("citytag stored data with a warning", reason, pl, detail) || t.bus == nil {
		return
	}
	e := events.ProbeWarning(t.now(), pl.probe, reason, detail)
	e.SrcCity, e.IslandGroup = pl.city.Name, pl.city.IslandGroup
	e.Carrier, e.NetworkType = pl.carrier, pl.networkType
	for k, v := range attrs {
		if e.Attrs == nil {
			e.Attrs = make(map[string]any, len(attrs))
		}
		e.Attrs[k] = v
	}
	t.bus.Publish(e)
}

func formatNanos(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }

// durationText renders a gap in whole seconds (a point from the year 2200
// is beyond what time.Duration holds: it is given in days).
func durationText(ns int64) string {
	if ns >= int64(100*24*time.Hour) {
		return strconv.FormatInt(ns/int64(24*time.Hour), 10) + " days"
	}
	return time.Duration(ns).Round(time.Second).String()
}
