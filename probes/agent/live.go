package agent

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// liveExporter exports only the points of live targets (and those of no
// target: the probe's own metrics). The SDK cannot forget an attribute
// set, so without it a target the mesh removed would be exported, its
// counters standing still, for as long as the probe runs.
type liveExporter struct {
	sdkmetric.Exporter
	live *atomic.Pointer[map[string]struct{}]
}

func (e liveExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	return e.Exporter.Export(ctx, onlyLive(rm, *e.live.Load()))
}

// liveKey names a target's series: a registry entry whose city changes
// keeps its target name, and the series of the old city must go stale.
func liveKey(target, dstCity string) string { return target + "\x00" + dstCity }

// onlyLive is rm without the points of targets not in live: rm itself when
// it has none, else a copy (the reader reuses rm and its points' slices
// for the next collection, so they are not changed in place).
func onlyLive(rm *metricdata.ResourceMetrics, live map[string]struct{}) *metricdata.ResourceMetrics {
	keep := func(s attribute.Set) bool {
		target, ok := s.Value(metricmodel.AttrTarget)
		if !ok {
			return true
		}
		dst, _ := s.Value(metricmodel.AttrDstCity)
		_, ok = live[liveKey(target.AsString(), dst.AsString())]
		return ok
	}
	dropped := false
	out := &metricdata.ResourceMetrics{Resource: rm.Resource, ScopeMetrics: make([]metricdata.ScopeMetrics, len(rm.ScopeMetrics))}
	for i, sm := range rm.ScopeMetrics {
		out.ScopeMetrics[i] = metricdata.ScopeMetrics{Scope: sm.Scope, Metrics: make([]metricdata.Metrics, 0, len(sm.Metrics))}
		for _, m := range sm.Metrics {
			data, n, kept := filterData(m.Data, keep)
			if kept < n {
				dropped = true
			}
			if n > 0 && kept == 0 {
				continue // a metric with no points left is not sent at all
			}
			m.Data = data
			out.ScopeMetrics[i].Metrics = append(out.ScopeMetrics[i].Metrics, m)
		}
	}
	if !dropped {
		return rm
	}
	return out
}

// filterData keeps the points of a whose attributes pass keep; it returns
// how many points there were and how many are kept. One case per
// aggregation the SDK makes: metricdata has no interface over their points.
func filterData(a metricdata.Aggregation, keep func(attribute.Set) bool) (metricdata.Aggregation, int, int) {
	var n, k int
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		n, k = filterIn(&d.DataPoints, pointAttrs[int64], keep)
		a = d
	case metricdata.Sum[float64]:
		n, k = filterIn(&d.DataPoints, pointAttrs[float64], keep)
		a = d
	case metricdata.Gauge[int64]:
		n, k = filterIn(&d.DataPoints, pointAttrs[int64], keep)
		a = d
	case metricdata.Gauge[float64]:
		n, k = filterIn(&d.DataPoints, pointAttrs[float64], keep)
		a = d
	case metricdata.Histogram[int64]:
		n, k = filterIn(&d.DataPoints, histogramAttrs[int64], keep)
		a = d
	case metricdata.Histogram[float64]:
		n, k = filterIn(&d.DataPoints, histogramAttrs[float64], keep)
		a = d
	case metricdata.ExponentialHistogram[int64]:
		n, k = filterIn(&d.DataPoints, exponentialAttrs[int64], keep)
		a = d
	case metricdata.ExponentialHistogram[float64]:
		n, k = filterIn(&d.DataPoints, exponentialAttrs[float64], keep)
		a = d
	}
	return a, n, k
}

func pointAttrs[N int64 | float64](p *metricdata.DataPoint[N]) attribute.Set { return p.Attributes }

func histogramAttrs[N int64 | float64](p *metricdata.HistogramDataPoint[N]) attribute.Set {
	return p.Attributes
}

func exponentialAttrs[N int64 | float64](p *metricdata.ExponentialHistogramDataPoint[N]) attribute.Set {
	return p.Attributes
}

// filterIn replaces *dps by the points that pass keep and returns how many
// there were and are.
func filterIn[P any](dps *[]P, attrs func(*P) attribute.Set, keep func(attribute.Set) bool) (int, int) {
	n := len(*dps)
	*dps = filterPoints(*dps, attrs, keep)
	return n, len(*dps)
}

// filterPoints returns the points that pass keep: dps itself when all do,
// else a new slice.
func filterPoints[P any](dps []P, attrs func(*P) attribute.Set, keep func(attribute.Set) bool) []P {
	for i := range dps {
		if keep(attrs(&dps[i])) {
			continue
		}
		out := append(make([]P, 0, len(dps)-1), dps[:i]...)
		for j := i + 1; j < len(dps); j++ {
			if keep(attrs(&dps[j])) {
				out = append(out, dps[j])
			}
		}
		return out
	}
	return dps
}
