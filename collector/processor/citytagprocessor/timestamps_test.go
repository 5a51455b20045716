package citytagprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/internal/events"
)

// atTimes is one uplink's latency points to Davao at the given times.
func atTimes(md pmetric.Metrics, u uplinkRes, times ...time.Time) {
	dsts := make([]string, len(times))
	for i := range dsts {
		dsts[i] = "Davao"
	}
	m := addResource(md, u, dsts...)
	for i, at := range times {
		m.Histogram().DataPoints().At(i).SetTimestamp(pcommon.NewTimestampFromTime(at))
	}
}

// skews returns the clock-skew gauge by probe.
func (h *harness) skews(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	m, err := h.tel.GetMetric("bantay_citytag_clock_skew_seconds")
	if err != nil {
		return out
	}
	for _, dp := range m.Data.(metricdata.Gauge[float64]).DataPoints {
		p, _ := dp.Attributes.Value(labelProbe)
		out[p.AsString()] = dp.Value
	}
	return out
}

// TestTimestampBounds: a point beyond now + max_ahead or before now -
// max_age is rejected with its reason, counted, and named to the sender;
// a point within, even at the edges, goes on, and so do the other points
// of the request.
func TestTimestampBounds(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	h := startHarness(t, testConfig(), func(c *cityTagger) { c.now = func() time.Time { return now } })
	md := pmetric.NewMetrics()
	atTimes(md, mnlGlobe, now, now.Add(5*time.Minute), now.Add(-25*time.Minute), // the edges pass
		now.Add(2*time.Hour), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(5*time.Minute+time.Millisecond),
		now.Add(-25*time.Minute-time.Millisecond), time.Unix(0, 0))
	assert.Equal(t, `citytag rejected 5 of 8 points; first: timestamp_in_future (probe mnl-01, target "reflector-Davao"): `+
		`point time 2026-12-03T10:00:00Z is 2h0m0s ahead of the collector's clock (max_ahead 5m0s): the probe's clock is fast; `+
		`2 reasons in all: timestamp_in_future 3, timestamp_too_old 2`,
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md)))
	assert.Equal(t, 3, h.sink.DataPointCount())
	assert.Equal(t, map[string]int64{reasonTimestampInFuture: 3, reasonTimestampTooOld: 2}, h.rejected(t))

	md = pmetric.NewMetrics()
	atTimes(md, mnlGlobe, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	assert.Contains(t, refusal(t, h.proc.ConsumeMetrics(context.Background(), md)),
		`point time 2200-01-01T00:00:00Z is 63215 days ahead of the collector's clock`)
}

// TestClockSkewIsVisible: each registered probe's newest point sets its
// clock-skew gauge, and a probe ahead beyond max_ahead gets one
// probe_warning event (clock_skew) per log_interval besides its
// rejections; other probes are not affected.
func TestClockSkewIsVisible(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	bus, err := events.NewBus(16, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	sub, cancel := bus.Subscribe()
	t.Cleanup(cancel)
	h := startHarness(t, testConfig(), func(c *cityTagger) {
		c.now = func() time.Time { return now }
		c.logs.SetClock(c.now)
		c.bus = bus // what start finds in the bantay extension
	})

	for range 3 {
		md := pmetric.NewMetrics()
		atTimes(md, mnlGlobe, now.Add(-time.Minute), now.Add(2*time.Hour))
		atTimes(md, uplinkRes{"dvo-01", "Davao", "Smart", "5g"}, now.Add(-30*time.Second), now.Add(-15*time.Second))
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md))
	}
	assert.Equal(t, map[string]float64{"mnl-01": 7200, "dvo-01": -15}, h.skews(t))
	assert.Equal(t, 3*3, h.sink.DataPointCount(), "mnl-01's current point and both of dvo-01's, every time")

	var warnings, rejections []events.Event
	for len(sub) > 0 {
		e := <-sub
		switch e.Kind {
		case events.KindProbeWarning:
			warnings = append(warnings, e)
		case events.KindProbeRejected:
			rejections = append(rejections, e)
		}
	}
	require.Len(t, warnings, 1, "rate limited: one per log_interval")
	w := warnings[0]
	assert.Equal(t, "mnl-01", w.Probe)
	assert.Equal(t, warnClockSkew, w.Reason)
	assert.Equal(t, "Manila", w.SrcCity)
	assert.Equal(t, "Globe", w.Carrier)
	assert.Equal(t, 7200.0, w.Attrs[events.AttrClockSkewSeconds])
	assert.Equal(t, "newest point is 2h0m0s ahead of the collector's clock (max_ahead 5m0s); its points beyond are rejected as timestamp_in_future", w.Error)
	require.Len(t, rejections, 1)
	assert.Equal(t, reasonTimestampInFuture, rejections[0].Reason)
}

// TestLatePointsCountedPerProbe: a point older than the newest point its
// probe uplink already delivered (a store-and-forward backlog, sent after
// fresh data) is stored and counted as late for its probe; a point in
// order, a point of another uplink and a rejected point are not, and a
// rejected point does not make later ones late.
func TestLatePointsCountedPerProbe(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	h := startHarness(t, testConfig(), func(c *cityTagger) { c.now = func() time.Time { return now } })
	send := func(u uplinkRes, times ...time.Time) {
		t.Helper()
		md := pmetric.NewMetrics()
		atTimes(md, u, times...)
		_ = h.proc.ConsumeMetrics(context.Background(), md)
	}
	send(mnlGlobe, now)                                            // fresh data after the outage
	send(mnlGlobe, now.Add(-2*time.Minute), now.Add(-time.Minute)) // the backlog: 2 late
	// The backlog's request is minutes old; mnl-01's clock is not.
	assert.Equal(t, map[string]float64{"mnl-01": 0}, h.skews(t))
	send(mnlGlobe, now.Add(-time.Hour))      // rejected as too old: not late
	send(mnlGlobe, now.Add(time.Hour))       // rejected as ahead: moves no mark
	send(mnlGlobe, now.Add(time.Second))     // so this one is in order
	send(mnlPLDT, now.Add(-time.Minute))     // another uplink's first point
	send(dvoDITO, now, now.Add(time.Second)) // in order
	assert.Equal(t, map[string]int64{"mnl-01": 2}, h.counterBy(t, "bantay_citytag_late_points", labelProbe))
	assert.Equal(t, 7, h.sink.DataPointCount(), "late points are stored")
}
