package agent

import (
	"context"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// pointSlices are the backing arrays of every histogram point's exemplars
// and bucket counts in rm, by metric and point. (The SDK's cumulative sums
// make their points afresh at every collection whatever it is given.)
func pointSlices(rm *metricdata.ResourceMetrics) map[string][]unsafe.Pointer {
	out := map[string][]unsafe.Pointer{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], unsafe.Pointer(unsafe.SliceData(p.Exemplars)), unsafe.Pointer(unsafe.SliceData(p.BucketCounts)))
				}
			}
		}
	}
	return out
}

// TestExportLoopReusesPoints: every collection goes into the same
// ResourceMetrics, so the SDK refills the points' exemplar and bucket
// slices instead of making them again (a PeriodicReader erases its
// ResourceMetrics after each export, and with 1,000 targets the exemplar
// slices alone were two fifths of what the probe allocated).
func TestExportLoopReusesPoints(t *testing.T) {
	collector := testenv.FreeAddr(t)
	recv := startReceiver(t, collector)
	cfg := testConfig(t, collector, startReflector(t), testenv.FreeAddr(t))
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := a.uplink[0]
	ctx := context.Background()
	u.inst.latency.Record(ctx, 12.5)
	u.inst.lateness.Record(ctx, 0.001, u.inst.here)
	var first map[string][]unsafe.Pointer
	for i := range 2 {
		if err := u.loop.export(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = pointSlices(&u.loop.rm)
		}
	}
	second := pointSlices(&u.loop.rm)
	for _, name := range []string{metricmodel.Latency, metricmodel.Lateness} {
		if len(first[name]) == 0 || len(first[name]) != len(second[name]) {
			t.Fatalf("%s: %d and %d points' slices collected; want the same, more than none", name, len(first[name]), len(second[name]))
		}
		for i := range first[name] {
			if first[name][i] != second[name][i] {
				t.Errorf("%s: slice %d made afresh by the second collection", name, i)
			}
		}
	}
	if recv.count() != 2 {
		t.Errorf("%d exports received; want 2", recv.count())
	}
	if err := a.shutdownProviders(ctx); err != nil {
		t.Fatal(err)
	}
	if want := 2 + len(a.uplink); recv.count() != want {
		t.Errorf("%d exports received after shutdown; want %d (shutdown exports every uplink once more)", recv.count(), want)
	}
}
