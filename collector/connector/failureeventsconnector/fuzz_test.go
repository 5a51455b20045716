package failureeventsconnector

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// FuzzFold feeds arbitrary sequences of failure points (what probes send,
// after citytag) through the folder. Whatever the input — resets,
// duplicates, time going backwards, huge or negative values, missing
// attributes, a clock that jumps — it must not panic, every event must
// have a positive count and first <= last, and the state must stay within
// max_streams.
func FuzzFold(f *testing.F) {
	f.Add([]byte{0, 1, 0, 10, 0, 2, 0, 11, 0, 3, 0, 11, 0, 4, 0, 11})
	f.Add([]byte{1, 1, 255, 255, 1, 1, 0, 0, 2, 9, 0, 1, 2, 9, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := createDefaultConfig().(*Config)
		cfg.MaxStreams = 4
		cfg.MaxBurst = time.Minute
		var got []events.Event
		fo := newFolder(cfg, func(e events.Event) { got = append(got, e) }, func(string) {}, nil)
		targets := []string{"203.0.113.7:443", "", "198.51.100.1:53"}
		reasons := []string{"timeout", "refused", ""}
		now := t0
		// Each 4-byte record: stream selector, time step, value (2 bytes).
		for len(data) >= 4 {
			sel, step, raw := data[0], data[1], binary.BigEndian.Uint16(data[2:4])
			data = data[4:]
			md := pmetric.NewMetrics()
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("service.instance.id", []string{"dvo-01", "mnl-01", ""}[int(sel)%3])
			m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
			m.SetName(metricmodel.Failures)
			sum := m.SetEmptySum()
			if sel&0x80 != 0 {
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			} else {
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			}
			dp := sum.DataPoints().AppendEmpty()
			dp.Attributes().PutStr("target", targets[int(sel>>2)%3])
			dp.Attributes().PutStr("reason", reasons[int(sel>>4)%3])
			// Time moves by -8..+247 s: mostly forward, sometimes back.
			now = now.Add(time.Duration(int(step)-8) * time.Second)
			dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
			if sel&0x40 != 0 {
				dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(raw) * time.Second)))
			}
			switch {
			case raw == 0xffff:
				dp.SetDoubleValue(math.NaN())
			case raw == 0xfffe:
				dp.SetDoubleValue(-1)
			case sel&0x20 != 0:
				dp.SetDoubleValue(float64(raw) / 3)
			default:
				dp.SetIntValue(int64(raw))
			}
			fo.consume(md, now)
			if step%7 == 0 {
				fo.tick(now.Add(time.Duration(step) * time.Minute))
			}
			if len(fo.streams) > cfg.MaxStreams {
				t.Fatalf("%d streams, bound %d", len(fo.streams), cfg.MaxStreams)
			}
		}
		fo.closeAll()
		for _, e := range got {
			n, _ := e.Attrs[events.AttrCount].(int64)
			first, _ := e.Attrs[attrFirstTime].(time.Time)
			last, _ := e.Attrs[attrLastTime].(time.Time)
			if n < 1 || last.Before(first) || e.Probe == "" || e.Target == "" || e.Reason == "" {
				t.Fatalf("bad event %+v", e)
			}
		}
	})
}
