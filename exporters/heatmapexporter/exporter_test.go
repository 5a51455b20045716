package heatmapexporter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/exporters/heatmapexporter/internal/metadata"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

var bounds = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}

// batch builds what the pipeline hands the exporter after citytag and
// deltatocumulative: one probe uplink, cumulative latency and counters.
func batch(start, at time.Time, temporality pmetric.AggregationTemporality, counts []uint64, sum float64, attempts, failures int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	attrs := func(m pcommon.Map) {
		for k, v := range map[string]string{"src_city": "Manila", "dst_city": "Davao", "carrier": "Globe",
			"network_type": "5g", "region": "NCR", "island_group": "Luzon", "dst_region": "Davao Region",
			"dst_island_group": "Mindanao", "probe": "mnl-01", "target": "dvo-web:443", "method": "tcp"} {
			m.PutStr(k, v)
		}
	}
	lat := ms.AppendEmpty()
	lat.SetName(metricmodel.Latency)
	lat.SetUnit("ms")
	h := lat.SetEmptyHistogram()
	h.SetAggregationTemporality(temporality)
	dp := h.DataPoints().AppendEmpty()
	attrs(dp.Attributes())
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.ExplicitBounds().FromRaw(bounds)
	dp.BucketCounts().FromRaw(counts)
	var n uint64
	for _, c := range counts {
		n += c
	}
	dp.SetCount(n)
	dp.SetSum(sum)
	for _, c := range []struct {
		name string
		v    int64
		f    bool
	}{{metricmodel.Attempts, attempts, false}, {metricmodel.Failures, failures, true}} {
		m := ms.AppendEmpty()
		m.SetName(c.name)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(temporality)
		p := s.DataPoints().AppendEmpty()
		attrs(p.Attributes())
		if c.f {
			p.Attributes().PutStr("reason", "timeout")
		}
		p.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		p.SetTimestamp(pcommon.NewTimestampFromTime(at))
		p.SetIntValue(c.v)
	}
	return md
}

func counts(idx ...int) []uint64 {
	c := make([]uint64, len(bounds)+1)
	for _, i := range idx {
		c[i]++
	}
	return c
}

type snapCell struct {
	ID       string   `json:"id"`
	P50      *float64 `json:"p50"`
	Count    uint64   `json:"count"`
	Attempts float64  `json:"attempts"`
	Failures float64  `json:"failures"`
	Loss     *float64 `json:"loss"`
	Jitter   *float64 `json:"jitter"`
}

func snapshot(t *testing.T, hm *heatmap.Heatmap) map[string]snapCell {
	t.Helper()
	rec := httptest.NewRecorder()
	hm.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, hub.PathSnapshot, nil))
	var s struct {
		Cells []snapCell `json:"cells"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, rec.Body.String())
	}
	out := map[string]snapCell{}
	for _, c := range s.Cells {
		out[c.ID] = c
	}
	return out
}

func startExporter(t *testing.T, hm *heatmap.Heatmap) exporter.Metrics {
	t.Helper()
	cfg := createDefaultConfig()
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := hosttest.With(&hosttest.Provider{Map: hm})
	if err := exp.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// drain shuts the exporter down, which waits until its queue is empty:
// everything it accepted is then in the heatmap.
func drain(t *testing.T, exp component.Component) {
	t.Helper()
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// exportCell feeds the batches through a started exporter into a fresh
// heatmap, starts it (its first broadcast tick) and returns the
// Manila→Davao Globe 5g cell of its snapshot.
func exportCell(t *testing.T, mds ...pmetric.Metrics) snapCell {
	t.Helper()
	hm, err := heatmap.New(heatmap.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hm.Close() })
	exp := startExporter(t, hm)
	for _, md := range mds {
		if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, exp)
	if err := hm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, ok := snapshot(t, hm)["Manila|Davao|Globe|5g"]
	if !ok {
		t.Fatal("no Manila→Davao Globe 5g cell in the snapshot")
	}
	return c
}

func TestExportFeedsHeatmapOnceEvenOnRetry(t *testing.T) {
	now := time.Now()
	start := now.Add(-25 * time.Second)
	// Two 15 s intervals; the second batch is delivered twice (a retry).
	// Bucket 9 is (15,20], bucket 13 is (40,50].
	b1 := batch(start, now.Add(-15*time.Second), pmetric.AggregationTemporalityCumulative, counts(9, 9, 9), 54, 4, 1)
	b2 := batch(start, now, pmetric.AggregationTemporalityCumulative, counts(9, 9, 9, 9, 13), 117, 6, 1)
	c := exportCell(t, b1, b2, b2)
	// Five samples (not eight: the retry is ignored), p50 at rank 2.5 of
	// four in (15,20] → 15 + 5·2.5/4.
	if c.Count != 5 || c.P50 == nil || *c.P50 != 18.125 {
		t.Errorf("cell count %d p50 %v, want 5 and 18.125", c.Count, c.P50)
	}
	if c.Attempts != 6 || c.Failures != 1 || c.Loss == nil || *c.Loss != 1.0/6 && *c.Loss != 0.166667 {
		t.Errorf("attempts %g failures %g loss %v, want 6, 1, 1/6", c.Attempts, c.Failures, c.Loss)
	}
}

func TestExportDeltaTemporality(t *testing.T) {
	hm, err := heatmap.New(heatmap.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	exp := startExporter(t, hm)
	now := time.Now()
	for i := range 3 {
		at := now.Add(time.Duration(i-2) * 15 * time.Second)
		if err := exp.ConsumeMetrics(context.Background(), batch(at.Add(-15*time.Second), at, pmetric.AggregationTemporalityDelta, counts(13), 45, 1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, exp)
	if err := hm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := snapshot(t, hm)["Manila|Davao|Globe|5g"]; c.Count != 3 || c.Attempts != 3 {
		t.Errorf("delta points: count %d attempts %g, want 3 and 3", c.Count, c.Attempts)
	}
}

func TestStartFailsWithoutTheExtension(t *testing.T) {
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), createDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	err = exp.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), `extension "bantay" is not configured`) {
		t.Fatalf("start without extension: %v", err)
	}
	h := hosttest.With(&hosttest.Provider{}) // the bantay extension with its heatmap off
	exp2, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), createDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	err = exp2.Start(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), `extension "bantay" has no heatmap`) {
		t.Fatalf("start with the wrong extension: %v", err)
	}
}

// withRoundsAndPhases adds to a batch what an http-and-udp probe sends
// beside the path's latency: an http phase histogram (which the cell must
// not count) and the jitter counters (which it shows).
func withRoundsAndPhases(md pmetric.Metrics, start, at time.Time, phaseCounts []uint64, jitterMs float64, pairs int64) pmetric.Metrics {
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	lat := ms.At(0).Histogram().DataPoints()
	ph := lat.AppendEmpty()
	lat.At(0).CopyTo(ph)
	ph.Attributes().PutStr(metricmodel.AttrPhase, "connect")
	ph.BucketCounts().FromRaw(phaseCounts)
	var n uint64
	for _, c := range phaseCounts {
		n += c
	}
	ph.SetCount(n)
	ph.SetSum(1)
	attempts := ms.At(1).Sum().DataPoints().At(0)
	for _, c := range []struct {
		name string
		v    float64
	}{{metricmodel.Jitter, jitterMs}, {metricmodel.JitterPairs, float64(pairs)}} {
		m := ms.AppendEmpty()
		m.SetName(c.name)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		p := s.DataPoints().AppendEmpty()
		attempts.CopyTo(p)
		p.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		p.SetTimestamp(pcommon.NewTimestampFromTime(at))
		p.SetDoubleValue(c.v)
	}
	return md
}

// TestExportShowsJitterAndIgnoresPhases: the cell's jitter comes from the
// jitter counters, and an http phase's histogram does not add to the
// cell's latency samples (the cell is the total).
func TestExportShowsJitterAndIgnoresPhases(t *testing.T) {
	now := time.Now()
	start := now.Add(-25 * time.Second)
	b1 := withRoundsAndPhases(batch(start, now.Add(-15*time.Second), pmetric.AggregationTemporalityCumulative, counts(9), 18, 5, 0), start, now.Add(-15*time.Second), counts(0), 0, 0)
	b2 := withRoundsAndPhases(batch(start, now, pmetric.AggregationTemporalityCumulative, counts(9, 9, 9), 54, 10, 1), start, now, counts(0, 0, 0), 9, 6)
	c := exportCell(t, b1, b2)
	if c.Count != 3 || c.P50 == nil || *c.P50 <= 15 {
		t.Errorf("cell count %d p50 %v: want the 3 totals in (15,20], no phase samples", c.Count, c.P50)
	}
	if c.Jitter == nil || *c.Jitter != 1.5 {
		t.Errorf("cell jitter %v, want 9 ms / 6 pairs = 1.5", c.Jitter)
	}
}
