package rebuild

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
)

func TestExponentialOfShiftsPrometheusIndicesAndFillsSpanGaps(t *testing.T) {
	// Schema 3, Prometheus indices 5, 6 and (after a gap of two) 9: OTLP
	// indices 4, 5, 8 from offset 4.
	h := &histogram.FloatHistogram{
		Schema: 3, ZeroCount: 2, Count: 12, Sum: 30,
		PositiveSpans:   []histogram.Span{{Offset: 5, Length: 2}, {Offset: 2, Length: 1}},
		PositiveBuckets: []float64{3, 4, 3},
	}
	var e aggregate.Exponential
	if !exponentialOf(&e, h) {
		t.Fatal("refused a standard exponential histogram")
	}
	if e.Scale != 3 || e.ZeroCount != 2 || e.Offset != 4 || !slices.Equal(e.Counts, []uint64{3, 4, 0, 0, 3}) {
		t.Errorf("got scale %d zero %d offset %d counts %v", e.Scale, e.ZeroCount, e.Offset, e.Counts)
	}
	nhcb := &histogram.FloatHistogram{Schema: histogram.CustomBucketsSchema, CustomValues: []float64{1, 2},
		PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []float64{1}, Count: 1}
	if exponentialOf(&e, nhcb) {
		t.Error("took a custom-bucket histogram for an exponential one")
	}
}
