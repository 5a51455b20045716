package failureeventsconnector

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/events"
)

// feedTraced is feed with exemplars (trace id → time since t0) on the
// failures point, as the probe's reservoir sends them: the older ones stay
// until newer failures replace them.
func (h *harness) feedTraced(s series, offset time.Duration, value float64, exemplars map[pcommon.TraceID]time.Duration) {
	md := pmetric.NewMetrics()
	appendFailures(md, s, t0.Add(offset), value)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	dp := ms.At(ms.Len() - 1).Sum().DataPoints().At(0)
	for id, at := range exemplars {
		ex := dp.Exemplars().AppendEmpty()
		ex.SetTraceID(id)
		ex.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(at)))
		ex.SetIntValue(1)
	}
	h.now = t0.Add(offset)
	h.f.consume(md, h.now)
}

// The probe_failure event carries the trace id of its burst's first
// failure (issue 12), taken from the exemplar the probe attached, not an
// older one the point still repeats nor a later one of the same burst; the
// log record carries it for the Loki line. Of two new failures in one
// point, the earlier's.
func TestBurstCarriesTheFirstFailuresTraceID(t *testing.T) {
	old := pcommon.TraceID{0x01}
	first := pcommon.TraceID{0xf1, 0x57}
	later := pcommon.TraceID{0x1a, 0x7e}
	h := newHarness(t)
	h.feedTraced(dvoTimeout, 0, 3, map[pcommon.TraceID]time.Duration{old: -time.Hour}) // baseline: old failures
	h.feedTraced(dvoTimeout, 15*time.Second, 5, map[pcommon.TraceID]time.Duration{old: -time.Hour, first: 5 * time.Second, {0xf2}: 14 * time.Second})
	h.feedTraced(dvoTimeout, 30*time.Second, 6, map[pcommon.TraceID]time.Duration{first: 5 * time.Second, later: 29 * time.Second})
	h.run(dvoTimeout, 45*time.Second, 6, 6)
	h.wantEvents(1)
	e := h.got[0]
	checkBurst(t, e, 3, 15*time.Second, 30*time.Second)
	if e.TraceID != first {
		t.Errorf("event trace id %v, want the first failure's %v", e.TraceID, first)
	}
	if got := events.ToLogs(h.got).ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).TraceID(); got != first {
		t.Errorf("log record trace id %v, want %v", got, first)
	}

	// Failures without exemplars (a probe older than exemplars), or with
	// only an exemplar of an earlier failure, give no trace id.
	h = newHarness(t)
	h.run(dvoTimeout, 0, 0, 2, 2, 2)
	h.feedTraced(dvoTimeout, time.Minute, 4, map[pcommon.TraceID]time.Duration{old: 20 * time.Second})
	h.run(dvoTimeout, 75*time.Second, 4, 4)
	h.wantEvents(2)
	for _, e := range h.got {
		if !e.TraceID.IsEmpty() {
			t.Errorf("%s: trace id %v without an exemplar of its failures", e.Body, e.TraceID)
		}
	}
}
