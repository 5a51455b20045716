package failureeventsconnector

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// series describes one failures series as citytag leaves it.
type series struct {
	probe, carrier, networkType, target, reason string
	start                                       time.Time
}

var dvoTimeout = series{probe: "dvo-01", carrier: "Globe", networkType: "5g", target: "203.0.113.7:443", reason: "timeout", start: t0.Add(-time.Hour)}

// appendFailures adds a bantay.probe.failures point (and the probe's
// attempts point, as a real probe sends them together) to md.
func appendFailures(md pmetric.Metrics, s series, at time.Time, value float64) {
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", s.probe)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/bantay-noc/bantay/probes")
	attrs := func(m pcommon.Map) {
		m.PutStr("src_city", "Davao")
		m.PutStr("region", "Davao Region")
		m.PutStr("island_group", "Mindanao")
		m.PutStr("dst_city", "Manila")
		m.PutStr("dst_region", "NCR")
		m.PutStr("dst_island_group", "Luzon")
		m.PutStr("carrier", s.carrier)
		m.PutStr("network_type", s.networkType)
		m.PutStr("probe", s.probe)
		m.PutStr("target", s.target)
		m.PutStr("method", "tcp")
	}
	att := sm.Metrics().AppendEmpty()
	att.SetName(metricmodel.Attempts)
	att.SetEmptySum().SetIsMonotonic(true)
	att.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ap := att.Sum().DataPoints().AppendEmpty()
	attrs(ap.Attributes())
	ap.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
	ap.SetTimestamp(pcommon.NewTimestampFromTime(at))
	ap.SetIntValue(1000)

	m := sm.Metrics().AppendEmpty()
	m.SetName(metricmodel.Failures)
	m.SetUnit("{failure}")
	m.SetEmptySum().SetIsMonotonic(true)
	m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := m.Sum().DataPoints().AppendEmpty()
	attrs(dp.Attributes())
	dp.Attributes().PutStr("reason", s.reason)
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetIntValue(int64(value))
}

// harness drives a folder with hand-built points and collects its events.
type harness struct {
	t      *testing.T
	f      *folder
	got    []events.Event
	counts map[string]int
	now    time.Time
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	cfg := createDefaultConfig().(*Config)
	for _, m := range mutate {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, counts: map[string]int{}, now: t0}
	h.f = newFolder(cfg, func(e events.Event) { h.got = append(h.got, e) }, func(r string) { h.counts[r]++ }, nil)
	return h
}

// feed sends one point of s at t0+offset with the cumulative value; the
// wall clock follows the data.
func (h *harness) feed(s series, offset time.Duration, value float64) {
	md := pmetric.NewMetrics()
	appendFailures(md, s, t0.Add(offset), value)
	h.now = t0.Add(offset)
	h.f.consume(md, h.now)
}

// run feeds the values at 15 s steps starting at offset.
func (h *harness) run(s series, offset time.Duration, values ...float64) time.Duration {
	for _, v := range values {
		h.feed(s, offset, v)
		offset += 15 * time.Second
	}
	return offset
}

func (h *harness) wantEvents(n int) {
	h.t.Helper()
	if len(h.got) != n {
		for _, e := range h.got {
			h.t.Logf("event: %s %v", e.Body, e.Attrs)
		}
		h.t.Fatalf("%d events, want %d", len(h.got), n)
	}
}

func checkBurst(t *testing.T, e events.Event, count int64, first, last time.Duration) {
	t.Helper()
	if e.Attrs[events.AttrCount] != count {
		t.Errorf("count %v, want %d (%s)", e.Attrs[events.AttrCount], count, e.Body)
	}
	if !e.Time.Equal(t0.Add(first)) || e.Attrs[attrFirstTime] != t0.Add(first) || e.Attrs[attrLastTime] != t0.Add(last) {
		t.Errorf("time %v first %v last %v, want %v..%v", e.Time, e.Attrs[attrFirstTime], e.Attrs[attrLastTime], t0.Add(first), t0.Add(last))
	}
}

func TestOneEventPerBurst(t *testing.T) {
	h := newHarness(t)
	// The probe is known (its series at 0), then failures come and go:
	// +2, +1, quiet, +1, quiet, quiet → one burst of 4.
	end := h.run(dvoTimeout, 0, 10, 12, 13, 13, 14, 14)
	h.wantEvents(0) // one quiet point is not the end of a burst
	end = h.run(dvoTimeout, end, 14)
	h.wantEvents(1)
	e := h.got[0]
	checkBurst(t, e, 4, 15*time.Second, 60*time.Second)
	if e.Kind != events.KindProbeFailure || e.Severity != events.SeverityWarn || e.Probe != "dvo-01" ||
		e.SrcCity != "Davao" || e.IslandGroup != "Mindanao" || e.Carrier != "Globe" || e.NetworkType != "5g" ||
		e.DstCity != "Manila" || e.Target != "203.0.113.7:443" || e.Reason != "timeout" ||
		e.Error != "no answer within the probe timeout" || e.Attrs[attrMethod] != "tcp" {
		t.Errorf("event fields %+v", e)
	}
	if _, ok := e.Attrs[attrContinued]; ok {
		t.Error("a burst that ended quietly is marked continued")
	}
	const want = "dvo-01 (Davao, Globe 5g): 4 timeouts to 203.0.113.7:443 (tcp) in Manila between 02:00:15 and 02:01:00 UTC"
	if e.Body != want {
		t.Errorf("body %q\nwant %q", e.Body, want)
	}
	// The next failure opens a new burst.
	h.run(dvoTimeout, end, 15, 15, 15)
	h.wantEvents(2)
	checkBurst(t, h.got[1], 1, end, end)
	if h.got[1].Body != "dvo-01 (Davao, Globe 5g): 1 timeout to 203.0.113.7:443 (tcp) in Manila at 02:01:45 UTC" {
		t.Errorf("single failure body %q", h.got[1].Body)
	}
}

func TestDuplicateAndOutOfOrderPointsCountOnce(t *testing.T) {
	h := newHarness(t)
	h.feed(dvoTimeout, 0, 10)
	h.feed(dvoTimeout, 15*time.Second, 13)
	h.feed(dvoTimeout, 15*time.Second, 13) // a retried push
	h.feed(dvoTimeout, 5*time.Second, 11)  // late, older than what we have
	h.feed(dvoTimeout, 30*time.Second, 14)
	h.run(dvoTimeout, 45*time.Second, 14, 14)
	h.wantEvents(1)
	checkBurst(t, h.got[0], 4, 15*time.Second, 30*time.Second)
	if h.counts[resDuplicate] != 1 || h.counts[resOutOfOrder] != 1 {
		t.Errorf("counts %v", h.counts)
	}
}

func TestCounterResets(t *testing.T) {
	h := newHarness(t)
	h.run(dvoTimeout, 0, 10, 12)
	// The probe restarted: new start time, counter from zero.
	restarted := dvoTimeout
	restarted.start = t0.Add(40 * time.Second)
	h.feed(restarted, 45*time.Second, 3)
	// A reset without a start time change: the value went down.
	h.feed(restarted, 60*time.Second, 1)
	h.run(restarted, 75*time.Second, 1, 1)
	h.wantEvents(1)
	checkBurst(t, h.got[0], 2+3+1, 15*time.Second, 60*time.Second)
	if h.counts[resReset] != 2 {
		t.Errorf("resets %d, want 2 (%v)", h.counts[resReset], h.counts)
	}
}

func TestFirstPoint(t *testing.T) {
	t.Run("long-running counter of an unknown probe sets the base", func(t *testing.T) {
		h := newHarness(t)
		h.run(dvoTimeout, 0, 500, 500, 500)
		h.wantEvents(0)
		h.run(dvoTimeout, 45*time.Second, 501, 501, 501)
		h.wantEvents(1)
		checkBurst(t, h.got[0], 1, 45*time.Second, 45*time.Second)
		if h.counts[resBaseline] != 1 {
			t.Errorf("counts %v", h.counts)
		}
	})
	t.Run("fresh counter counts from zero", func(t *testing.T) {
		h := newHarness(t)
		fresh := dvoTimeout
		fresh.start = t0.Add(-10 * time.Second)
		h.run(fresh, 0, 2, 2, 2)
		h.wantEvents(1)
		checkBurst(t, h.got[0], 2, 0, 0)
	})
	t.Run("a reason's first failure on a known probe counts", func(t *testing.T) {
		h := newHarness(t)
		refused := dvoTimeout
		refused.reason = "refused"
		h.run(dvoTimeout, 0, 0, 0) // the probe reports: no timeouts
		h.run(refused, 30*time.Second, 1, 1, 1)
		h.wantEvents(1)
		checkBurst(t, h.got[0], 1, 30*time.Second, 30*time.Second)
		if h.got[0].Reason != "refused" || h.got[0].Body != "dvo-01 (Davao, Globe 5g): 1 refused connection to 203.0.113.7:443 (tcp) in Manila at 02:00:30 UTC" {
			t.Errorf("%+v", h.got[0])
		}
	})
}

func TestMaxBurstEmitsContinuations(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBurst = time.Minute })
	// A failure every 15 s for 3 minutes (13 failures), then quiet.
	var values []float64
	for i := range 13 {
		values = append(values, float64(i+1))
	}
	values = append(values, 13, 13)
	// A fresh counter, so the first point counts.
	s := dvoTimeout
	s.start = t0
	h.run(s, 0, values...)
	h.wantEvents(3)
	checkBurst(t, h.got[0], 5, 0, 60*time.Second)
	checkBurst(t, h.got[1], 5, 75*time.Second, 135*time.Second)
	checkBurst(t, h.got[2], 3, 150*time.Second, 180*time.Second)
	var total int64
	for i, e := range h.got {
		total += e.Attrs[events.AttrCount].(int64)
		_, continued := e.Attrs[attrContinued]
		if continued != (i < 2) {
			t.Errorf("event %d continued=%v", i, continued)
		}
		if i > 0 && (e.Attrs[attrContinuation] != true || e.Attrs[attrPart] != i+1) {
			t.Errorf("event %d attrs %v", i, e.Attrs)
		}
	}
	if total != 13 {
		t.Errorf("%d failures in the events, want all 13", total)
	}
	if h.got[1].Body != "dvo-01 (Davao, Globe 5g): 5 timeouts to 203.0.113.7:443 (tcp) in Manila between 02:01:15 and 02:02:15 UTC, continued (part 2), still failing" {
		t.Errorf("body %q", h.got[1].Body)
	}
}

func TestSilentStreamClosesAndExpires(t *testing.T) {
	h := newHarness(t)
	h.run(dvoTimeout, 0, 0, 2, 3)
	h.f.tick(h.now.Add(30 * time.Second)) // two intervals: points may still come
	h.wantEvents(0)
	h.f.tick(h.now.Add(46 * time.Second)) // three intervals without a point
	h.wantEvents(1)
	checkBurst(t, h.got[0], 3, 15*time.Second, 30*time.Second)
	if len(h.f.streams) != 1 || len(h.f.probes) != 1 {
		t.Fatalf("%d streams %d probes", len(h.f.streams), len(h.f.probes))
	}
	h.f.tick(h.now.Add(time.Hour + time.Second))
	if len(h.f.streams) != 0 || len(h.f.probes) != 0 {
		t.Errorf("after expire: %d streams %d probes", len(h.f.streams), len(h.f.probes))
	}
}

func TestUplinksAreSeparateStreams(t *testing.T) {
	h := newHarness(t)
	fiber := dvoTimeout
	fiber.carrier, fiber.networkType = "PLDT", "fiber"
	for i, v := range []float64{0, 1, 2, 2, 2} {
		at := time.Duration(i) * 15 * time.Second
		h.feed(dvoTimeout, at, v)
		h.feed(fiber, at, 3*v)
	}
	h.wantEvents(2)
	byCarrier := map[string]int64{}
	for _, e := range h.got {
		byCarrier[e.Carrier] = e.Attrs[events.AttrCount].(int64)
	}
	if byCarrier["Globe"] != 2 || byCarrier["PLDT"] != 6 {
		t.Errorf("per uplink %v", byCarrier)
	}
}

func TestBadPointsAndLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxStreams = 1 })
	noReason := dvoTimeout
	noReason.reason = ""
	h.feed(noReason, 0, 1)
	h.feed(dvoTimeout, 0, -1)
	h.feed(dvoTimeout, 15*time.Second, 1)
	other := dvoTimeout
	other.target = "198.51.100.1:53"
	h.feed(other, 15*time.Second, 1)
	if h.counts[resInvalid] != 2 || h.counts[resStreamLim] != 1 || len(h.f.streams) != 1 {
		t.Errorf("counts %v, %d streams", h.counts, len(h.f.streams))
	}
}

func TestDeltaTemporality(t *testing.T) {
	h := newHarness(t)
	for i, v := range []int64{2, 3, 0, 0} {
		md := pmetric.NewMetrics()
		appendFailures(md, dvoTimeout, t0.Add(time.Duration(i)*15*time.Second), float64(v))
		sum := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Sum()
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		h.f.consume(md, t0)
	}
	h.wantEvents(1)
	checkBurst(t, h.got[0], 5, 0, 15*time.Second)
}

func TestCloseAll(t *testing.T) {
	h := newHarness(t)
	h.run(dvoTimeout, 0, 0, 4)
	h.f.closeAll()
	h.wantEvents(1)
	checkBurst(t, h.got[0], 4, 15*time.Second, 15*time.Second)
	h.f.closeAll()
	h.wantEvents(1)
}

// TestSeriesWithoutStartTimeThenANewOne: a counter first seen without a
// start time (a sender that leaves it unset) whose next point carries a
// start after that first point is a new series: its whole value is new,
// as the heatmap counts it (internal/cumulative), not the difference to a
// value of another series.
func TestSeriesWithoutStartTimeThenANewOne(t *testing.T) {
	h := newHarness(t)
	unknown := dvoTimeout
	unknown.start = time.Unix(0, 0) // StartTimestamp 0: unknown
	h.feed(unknown, 0, 10)
	restarted := dvoTimeout
	restarted.start = t0.Add(5 * time.Second)
	h.run(restarted, 15*time.Second, 12, 12, 12)
	h.wantEvents(1)
	checkBurst(t, h.got[0], 12, 15*time.Second, 15*time.Second)
	if h.counts[resBaseline] != 1 || h.counts[resReset] != 1 {
		t.Errorf("results %v, want one baseline and one reset", h.counts)
	}
}
