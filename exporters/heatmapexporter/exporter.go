package heatmapexporter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/bantay-noc/bantay/collector/sharedstate"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/heatmap/wire"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/internal/metricmodel/pmetricwalk"
)

type heatmapExporter struct {
	cfg    *Config
	logger *zap.Logger
	hm     sharedstate.Heatmap
	pool   sync.Pool // *scratch: buffers reused across pushes
}

// scratch holds per-push buffers so a push allocates nothing per point.
type scratch struct {
	labels []aggregate.Label
	key    []byte
	bounds []float64
	counts []uint64
	exp    aggregate.Exponential
	point  aggregate.Point
	// classic holds the probes of this push that send network.latency as
	// a classic histogram: their native points are twins.
	classic map[string]struct{}
}

func newExporter(cfg *Config, set exporter.Settings) *heatmapExporter {
	e := &heatmapExporter{cfg: cfg, logger: set.Logger}
	e.pool.New = func() any { return &scratch{} }
	return e
}

// start finds the heatmap among the host's extensions.
func (e *heatmapExporter) start(_ context.Context, host component.Host) error {
	p, err := sharedstate.Find(host, e.cfg.Extension, "heatmap exporter")
	if err != nil {
		return err
	}
	hm := p.Heatmap()
	if hm == nil {
		return fmt.Errorf("heatmap exporter: extension %q has no heatmap (is it disabled in its config?)", e.cfg.Extension)
	}
	e.hm = hm
	return nil
}

// counterKinds are the counters a cell is computed from, by OTel name.
var counterKinds = map[string]aggregate.Kind{
	metricmodel.Attempts:    aggregate.KindAttempts,
	metricmodel.Failures:    aggregate.KindFailures,
	metricmodel.Jitter:      aggregate.KindJitter,
	metricmodel.JitterPairs: aggregate.KindJitterPairs,
}

// pushMetrics hands every latency histogram point (but the http phases)
// and attempts, failures and jitter counter point to the heatmap. Points
// it cannot use are counted by the heatmap (bantay_heatmap_points_total);
// other metrics are ignored.
func (e *heatmapExporter) pushMetrics(_ context.Context, md pmetric.Metrics) error {
	if e.hm == nil {
		return errors.New("heatmap exporter: not started")
	}
	s := e.pool.Get().(*scratch)
	defer e.pool.Put(s)
	if s.classic == nil {
		s.classic = map[string]struct{}{}
	}
	clear(s.classic)
	for instance, m := range pmetricwalk.Metrics(md) {
		if m.Name() == metricmodel.Latency && m.Type() == pmetric.MetricTypeHistogram {
			s.classic[instance] = struct{}{}
		}
	}
	for instance, m := range pmetricwalk.Metrics(md) {
		switch {
		case m.Name() == metricmodel.Latency && m.Type() == pmetric.MetricTypeHistogram:
			e.histograms(s, instance, m.Histogram())
		case m.Name() == metricmodel.LatencyNative && m.Type() == pmetric.MetricTypeExponentialHistogram:
			// A probe with recording.histograms: both sends every
			// measurement in both forms, in one export.
			_, twin := s.classic[instance]
			e.exponentials(s, instance, m.ExponentialHistogram(), twin)
		case m.Type() == pmetric.MetricTypeSum:
			if kind, ok := counterKinds[m.Name()]; ok {
				e.counters(s, instance, kind, m.Sum())
			}
		}
	}
	return nil
}

// identify fills the point's cell and stream key from its attributes.
func (s *scratch) identify(kind aggregate.Kind, instance string, attrs pcommon.Map) {
	s.labels = s.labels[:0]
	var cell pathstate.CellKey
	for k, v := range attrs.All() {
		val := v.AsString()
		switch k {
		case "src_city":
			cell.SrcCity = val
		case "dst_city":
			cell.DstCity = val
		case "carrier":
			cell.Carrier = val
		case "network_type":
			cell.NetworkType = val
		}
		s.labels = append(s.labels, aggregate.Label{Name: k, Value: val})
	}
	slices.SortFunc(s.labels, func(a, b aggregate.Label) int { return cmp.Compare(a.Name, b.Name) })
	s.key = aggregate.AppendStreamKey(s.key[:0], kind, instance, s.labels)
	s.point = aggregate.Point{Kind: kind, Stream: s.key, Cell: cell}
}

func (e *heatmapExporter) histograms(s *scratch, instance string, h pmetric.Histogram) {
	delta := h.AggregationTemporality() == pmetric.AggregationTemporalityDelta
	dps := h.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if dp.Flags().NoRecordedValue() {
			continue
		}
		if _, phase := dp.Attributes().Get(metricmodel.AttrPhase); phase {
			// A part of an http request's time, not the path's latency:
			// the cell shows the total, which has no phase.
			continue
		}
		s.identify(aggregate.KindLatency, instance, dp.Attributes())
		s.bounds = s.bounds[:0]
		for j := 0; j < dp.ExplicitBounds().Len(); j++ {
			s.bounds = append(s.bounds, dp.ExplicitBounds().At(j))
		}
		s.counts = s.counts[:0]
		for j := 0; j < dp.BucketCounts().Len(); j++ {
			s.counts = append(s.counts, dp.BucketCounts().At(j))
		}
		p := &s.point
		p.Bounds, p.Counts, p.Delta = s.bounds, s.counts, delta
		p.Sum = math.NaN()
		if dp.HasSum() {
			p.Sum = dp.Sum()
		}
		if dp.StartTimestamp() != 0 {
			p.Start = dp.StartTimestamp().AsTime()
		}
		p.Time = dp.Timestamp().AsTime()
		e.hm.Observe(p)
	}
}

// exponentials hands every native latency point (but the http phases) to
// the heatmap; twin says the same measurements came as classic points too.
func (e *heatmapExporter) exponentials(s *scratch, instance string, h pmetric.ExponentialHistogram, twin bool) {
	delta := h.AggregationTemporality() == pmetric.AggregationTemporalityDelta
	dps := h.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if dp.Flags().NoRecordedValue() {
			continue
		}
		if _, phase := dp.Attributes().Get(metricmodel.AttrPhase); phase {
			continue // as for the classic form: the cell shows the total
		}
		s.identify(aggregate.KindLatencyNative, instance, dp.Attributes())
		pos := dp.Positive()
		s.counts = s.counts[:0]
		for j := 0; j < pos.BucketCounts().Len(); j++ {
			s.counts = append(s.counts, pos.BucketCounts().At(j))
		}
		// Negative buckets are not read: a latency is not negative, and
		// citytag rejects a histogram whose minimum is.
		s.exp = aggregate.Exponential{Scale: dp.Scale(), ZeroCount: dp.ZeroCount(), Offset: pos.Offset(), Counts: s.counts}
		p := &s.point
		p.Exp, p.Twin, p.Delta = &s.exp, twin, delta
		p.Sum = math.NaN()
		if dp.HasSum() {
			p.Sum = dp.Sum()
		}
		if dp.StartTimestamp() != 0 {
			p.Start = dp.StartTimestamp().AsTime()
		}
		p.Time = dp.Timestamp().AsTime()
		e.hm.Observe(p)
	}
}

func (e *heatmapExporter) counters(s *scratch, instance string, kind aggregate.Kind, sum pmetric.Sum) {
	delta := sum.AggregationTemporality() == pmetric.AggregationTemporalityDelta
	dps := sum.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if dp.Flags().NoRecordedValue() {
			continue
		}
		s.identify(kind, instance, dp.Attributes())
		p := &s.point
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			p.Value = float64(dp.IntValue())
		case pmetric.NumberDataPointValueTypeDouble:
			p.Value = dp.DoubleValue()
		default:
			continue
		}
		p.Delta = delta
		if dp.StartTimestamp() != 0 {
			p.Start = dp.StartTimestamp().AsTime()
		}
		p.Time = dp.Timestamp().AsTime()
		e.hm.Observe(p)
	}
}

// Log record attributes of Bantay's events (docs/events.md).
const (
	attrKind        = "event.kind"
	attrSrcCity     = "src_city"
	attrDstCity     = "dst_city"
	attrCarrier     = "carrier"
	attrNetworkType = "network_type"
	attrProbe       = "probe"
)

// pushLogs turns every event log record (one with event.kind) into a feed
// entry and publishes them in one frame. Records without event.kind are
// not Bantay events and are skipped.
func (e *heatmapExporter) pushLogs(_ context.Context, ld plog.Logs) error {
	if e.hm == nil {
		return errors.New("heatmap exporter: not started")
	}
	items := make([]wire.FeedEvent, 0, ld.LogRecordCount())
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				if fe, ok := feedEvent(lrs.At(k)); ok {
					items = append(items, fe)
				}
			}
		}
	}
	e.hm.PublishEvents(items)
	return nil
}

// feedEvent converts one record; false when it has no event.kind.
func feedEvent(lr plog.LogRecord) (wire.FeedEvent, bool) {
	a := lr.Attributes()
	str := func(k string) string {
		if v, ok := a.Get(k); ok {
			return v.AsString()
		}
		return ""
	}
	kind := str(attrKind)
	if kind == "" {
		return wire.FeedEvent{}, false
	}
	fe := wire.FeedEvent{
		Kind: kind, Body: lr.Body().AsString(), Level: level(lr),
		SrcCity: str(attrSrcCity), DstCity: str(attrDstCity), Carrier: str(attrCarrier),
		NetworkType: str(attrNetworkType), Probe: str(attrProbe),
	}
	if id := lr.TraceID(); !id.IsEmpty() {
		fe.TraceID = id.String()
	}
	switch {
	case lr.Timestamp() != 0:
		fe.Time = lr.Timestamp().AsTime()
	case lr.ObservedTimestamp() != 0:
		fe.Time = lr.ObservedTimestamp().AsTime()
	}
	return fe, true
}

// level is the record's level as the loki exporter names it: from the
// severity number, else the severity text.
func level(lr plog.LogRecord) string {
	switch n := lr.SeverityNumber(); {
	case n >= plog.SeverityNumberError:
		return "error"
	case n >= plog.SeverityNumberWarn:
		return "warn"
	case n >= plog.SeverityNumberInfo:
		return "info"
	case n >= plog.SeverityNumberTrace:
		return "debug"
	}
	return strings.ToLower(lr.SeverityText())
}
