package rebuild

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// seriesNative is the native histogram of network.latency.native
// (docs/metric-model.md).
const seriesNative = "network_latency_native_milliseconds"

// readNative feeds every stored native latency histogram (the totals: no
// http phases) to agg as KindLatencyNative points, each marked a twin when
// hasClassic says the same labels have a classic histogram too, as the
// heatmap exporter marks them live. It returns the samples it read.
func readNative(ctx context.Context, querier storage.Querier, agg *aggregate.Aggregator, hasClassic func(labels.Labels) bool) (int, error) {
	ss := querier.Select(ctx, false, nil, noPhase, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, seriesNative))
	n := 0
	var key []byte
	var fh *histogram.FloatHistogram
	var e aggregate.Exponential
	for ss.Next() {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		series := ss.At()
		lset := labels.NewBuilder(series.Labels()).Del(model.MetricNameLabel).Labels()
		var ck pathstate.CellKey
		ck, key = streamIdentity(aggregate.KindLatencyNative, lset, key)
		p := aggregate.Point{Kind: aggregate.KindLatencyNative, Stream: key, Cell: ck, Twin: hasClassic(lset), Exp: &e}
		it := series.Iterator(nil)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			if typ != chunkenc.ValHistogram && typ != chunkenc.ValFloatHistogram {
				continue
			}
			var t int64
			t, fh = it.AtFloatHistogram(fh)
			if value.IsStaleNaN(fh.Sum) || !exponentialOf(&e, fh) {
				continue
			}
			n++
			p.Time, p.Sum = time.UnixMilli(t), fh.Sum
			agg.Observe(&p)
		}
		if err := it.Err(); err != nil {
			return n, fmt.Errorf("read %s%s: %w", seriesNative, series.Labels(), err)
		}
	}
	if err := ss.Err(); err != nil {
		return n, fmt.Errorf("select %s: %w", seriesNative, err)
	}
	return n, nil
}

// exponentialOf sets e to h's positive buckets in OTLP's terms: a
// Prometheus bucket of index i covers (base^(i-1), base^i], an OTLP one
// of index i (base^i, base^(i+1)]. False for a histogram of custom bounds
// (NHCB), which is not the probe's native histogram.
func exponentialOf(e *aggregate.Exponential, h *histogram.FloatHistogram) bool {
	if h.UsesCustomBuckets() {
		return false
	}
	e.Scale, e.ZeroCount, e.Counts = h.Schema, uint64(math.Round(h.ZeroCount)), e.Counts[:0]
	first := true
	for it := h.PositiveBucketIterator(); it.Next(); {
		b := it.At()
		if first {
			e.Offset, first = b.Index-1, false
		}
		for int32(len(e.Counts)) < b.Index-1-e.Offset {
			e.Counts = append(e.Counts, 0) // the gaps between spans
		}
		e.Counts = append(e.Counts, uint64(math.Round(b.Count)))
	}
	return true
}
