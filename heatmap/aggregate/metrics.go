package aggregate

import "github.com/prometheus/client_golang/prometheus"

// Point results counted in bantay_heatmap_points_total{kind,result}.
const (
	resAccepted    = "accepted"     // delta added to its cell
	resBaseline    = "baseline"     // first point of a stream: remembered, nothing added
	resReset       = "reset"        // counter reset: the whole value taken as the delta
	resDuplicate   = "duplicate"    // same timestamp as the last point (a retry)
	resOutOfOrder  = "out_of_order" // older than the last point of its stream
	resTooOld      = "too_old"      // older than the history
	resBadBuckets  = "bad_buckets"  // counts do not match bounds
	resCellLimit   = "cell_limit"   // max_cells reached
	resStreamLimit = "stream_limit" // max_streams reached
	resBadLabels   = "bad_labels"   // a cell label is empty
)

var pointResults = []string{resAccepted, resLate, resBaseline, resReset, resDuplicate, resOutOfOrder, resTooOld, resBadBuckets, resCellLimit, resStreamLimit, resBadLabels}

// metrics are the aggregation's own: what happened to the points, and how
// many cells and streams it holds.
type metrics struct {
	points  map[Kind]map[string]prometheus.Counter
	clamped prometheus.Counter
	cells   prometheus.Gauge
	streams prometheus.Gauge
	all     []prometheus.Collector // for Aggregator.Collectors
}

func newMetrics() *metrics {
	pointsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bantay_heatmap_points_total",
		Help: "Data points offered to the heatmap, by metric kind and what happened to them.",
	}, []string{"kind", "result"})
	m := &metrics{
		points: map[Kind]map[string]prometheus.Counter{},
		clamped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_heatmap_clamped_observations_total",
			Help: "Observations not stored because a slot bucket was full (65535).",
		}),
		cells: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bantay_heatmap_cells",
			Help: "Cells (src_city, dst_city, carrier, network_type) held by the heatmap.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bantay_heatmap_streams",
			Help: "Cumulative streams whose last value is tracked for deltas.",
		}),
	}
	for _, k := range []Kind{KindLatency, KindLatencyNative, KindAttempts, KindFailures, KindJitter, KindJitterPairs} {
		m.points[k] = map[string]prometheus.Counter{}
		for _, r := range pointResults {
			m.points[k][r] = pointsVec.WithLabelValues(k.String(), r)
		}
	}
	m.all = []prometheus.Collector{pointsVec, m.clamped, m.cells, m.streams}
	return m
}
