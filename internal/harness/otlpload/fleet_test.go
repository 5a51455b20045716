package otlpload

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// TestStreamExportsLikeAProbe: an export carries, per target, the latency
// histogram with the probes' bucket bounds and the attempts and six failure
// counters; counts are cumulative and never go down, and sample times
// strictly increase even when exports are made within one millisecond.
func TestStreamExportsLikeAProbe(t *testing.T) {
	fleet, err := NewFleet(3, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	streams := Streams(fleet, time.Now().Add(-time.Minute))
	if len(streams) != 6 {
		t.Fatalf("%d streams, want probes × uplinks = 6", len(streams))
	}
	s := streams[0]
	if s.Probe.Uplinks[0].Carrier == s.Probe.Uplinks[1].Carrier {
		t.Fatalf("a probe's uplinks share carrier %s", s.Probe.Uplinks[0].Carrier)
	}
	now := time.Now()
	var last time.Time
	var lastCount, lastAttempts uint64
	for i := range 50 {
		md, sample := s.Export(now) // the same instant every time
		if !sample.After(last) {
			t.Fatalf("export %d: sample time %v not after %v", i, sample, last)
		}
		last = sample
		if md.DataPointCount() != s.Points() || s.Points() != 4*PointsPerTarget {
			t.Fatalf("export %d: %d points, want %d", i, md.DataPointCount(), 4*PointsPerTarget)
		}
		rm := md.ResourceMetrics().At(0)
		if id, _ := rm.Resource().Attributes().Get("service.instance.id"); id.Str() != s.Probe.ID {
			t.Fatalf("service.instance.id %q, want %q", id.Str(), s.Probe.ID)
		}
		ms := rm.ScopeMetrics().At(0).Metrics()
		hist := ms.At(0).Histogram().DataPoints().At(0)
		if !slices.Equal(hist.ExplicitBounds().AsRaw(), metricmodel.LatencyBounds) {
			t.Fatalf("bounds %v", hist.ExplicitBounds().AsRaw())
		}
		var sum uint64
		for _, c := range hist.BucketCounts().AsRaw() {
			sum += c
		}
		attempts := uint64(ms.At(1).Sum().DataPoints().At(0).IntValue())
		timeouts := uint64(ms.At(2).Sum().DataPoints().At(0).IntValue())
		if sum != hist.Count() || hist.Count() < lastCount || attempts != uint64(i+1) || hist.Count()+timeouts != attempts {
			t.Fatalf("export %d: buckets %d, count %d (was %d), attempts %d, timeouts %d", i, sum, hist.Count(), lastCount, attempts, timeouts)
		}
		if ms.At(0).Histogram().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			t.Fatal("not cumulative")
		}
		lastCount, lastAttempts = hist.Count(), attempts
	}
	if lastAttempts != 50 {
		t.Fatalf("attempts %d", lastAttempts)
	}
}
