package agent

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestOnlyLive: the export keeps points of live targets and of no target,
// drops the others — also a live target's series of a city it no longer
// has — leaves out a metric with no point left, and changes nothing in the
// reader's own data.
func TestOnlyLive(t *testing.T) {
	set := func(kv ...string) attribute.Set {
		var attrs []attribute.KeyValue
		for i := 0; i+1 < len(kv); i += 2 {
			attrs = append(attrs, attribute.String(kv[i], kv[i+1]))
		}
		return attribute.NewSet(attrs...)
	}
	davao := set("target", "mesh-dvo-01-udp", "dst_city", "Davao")
	moved := set("target", "mesh-dvo-01-udp", "dst_city", "Cebu")
	gone := set("target", "mesh-bag-01-udp", "dst_city", "Baguio")
	own := set("dst_city", "Manila")
	rm := &metricdata.ResourceMetrics{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{
		{Name: "attempts", Data: metricdata.Sum[int64]{DataPoints: []metricdata.DataPoint[int64]{
			{Attributes: moved, Value: 1}, {Attributes: davao, Value: 2}, {Attributes: gone, Value: 3}, {Attributes: own, Value: 4}}}},
		{Name: "latency", Data: metricdata.Histogram[float64]{DataPoints: []metricdata.HistogramDataPoint[float64]{
			{Attributes: davao, Count: 5}, {Attributes: gone, Count: 6}}}},
		{Name: "status", Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Attributes: gone, Value: 200}}}},
	}}}}
	live := map[string]struct{}{liveKey("mesh-dvo-01-udp", "Davao"): {}}

	out := onlyLive(rm, live)
	got := out.ScopeMetrics[0].Metrics
	if len(got) != 2 || got[0].Name != "attempts" || got[1].Name != "latency" {
		t.Fatalf("metrics %+v, want attempts and latency (status has no live point)", got)
	}
	if dps := got[0].Data.(metricdata.Sum[int64]).DataPoints; len(dps) != 2 || dps[0].Value != 2 || dps[1].Value != 4 {
		t.Errorf("attempts points %+v, want the live target's and the probe's own", dps)
	}
	if dps := got[1].Data.(metricdata.Histogram[float64]).DataPoints; len(dps) != 1 || dps[0].Count != 5 {
		t.Errorf("latency points %+v, want the live target's", dps)
	}
	if n := len(rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints); n != 4 || len(rm.ScopeMetrics[0].Metrics) != 3 {
		t.Errorf("the reader's data was changed: %d points, %d metrics", n, len(rm.ScopeMetrics[0].Metrics))
	}

	live[liveKey("mesh-dvo-01-udp", "Cebu")] = struct{}{}
	live[liveKey("mesh-bag-01-udp", "Baguio")] = struct{}{}
	if onlyLive(rm, live) != rm {
		t.Error("with every target live the export is the reader's data itself, not a copy")
	}
}
