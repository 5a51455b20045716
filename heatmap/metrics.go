package heatmap

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

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

var pointResults = []string{resAccepted, resBaseline, resReset, resDuplicate, resOutOfOrder, resTooOld, resBadBuckets, resCellLimit, resStreamLimit, resBadLabels}

type metrics struct {
	points        map[Kind]map[string]prometheus.Counter
	clamped       prometheus.Counter
	cells         prometheus.Gauge
	streams       prometheus.Gauge
	events        *prometheus.CounterVec
	eventDrops    prometheus.Counter
	rebuildPoints prometheus.Counter

	connections    prometheus.Gauge
	upgradesRefuse *prometheus.CounterVec
	invalid        *prometheus.CounterVec
	frames         *prometheus.CounterVec
	frameBytes     *prometheus.CounterVec
	encoded        prometheus.Counter
	coalesced      prometheus.Counter
	disconnects    *prometheus.CounterVec
	broadcastDur   prometheus.Histogram
	deliveryLag    prometheus.Histogram
	queueHighWater prometheus.Gauge

	// byFrame holds the frames/bytes counters per frame type, resolved once:
	// they are bumped per frame per client, where a label lookup would cost
	// more than the write bookkeeping itself.
	byFrame map[string]frameCounters
}

type frameCounters struct{ frames, bytes prometheus.Counter }

var frameTypes = []string{"snapshot", "delta", "events", "drilldown", "drilldown_update", "drilldown_end", "error", "pong"}

// sent counts one frame written to one client.
func (m *metrics) sent(typ string, size int) {
	fc, ok := m.byFrame[typ]
	if !ok {
		fc = frameCounters{m.frames.WithLabelValues(typ), m.frameBytes.WithLabelValues(typ)}
	}
	fc.frames.Inc()
	fc.bytes.Add(float64(size))
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
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
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_events_total",
			Help: "Path state changes emitted, by kind.",
		}, []string{"kind"}),
		eventDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_heatmap_event_drops_total",
			Help: "Events dropped because a subscriber's queue was full.",
		}),
		rebuildPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_heatmap_rebuild_samples_total",
			Help: "Samples read from the TSDB to rebuild the heatmap at start.",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bantay_heatmap_ws_connections",
			Help: "Open websocket connections.",
		}),
		upgradesRefuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_refused_total",
			Help: "Websocket upgrades or API requests refused, by reason.",
		}, []string{"reason"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_invalid_messages_total",
			Help: "Invalid client messages, by error code.",
		}, []string{"code"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_frames_sent_total",
			Help: "Frames written to websocket clients, by frame type.",
		}, []string{"type"}),
		frameBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_frame_bytes_total",
			Help: "Uncompressed bytes of frames written to websocket clients, by frame type.",
		}, []string{"type"}),
		encoded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_frames_encoded_total",
			Help: "Frames encoded (once per subscription group, shared by its clients).",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_coalesced_total",
			Help: "Times a slow client's queued deltas were replaced by a fresh snapshot.",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_disconnects_total",
			Help: "Websocket connections ended, by reason.",
		}, []string{"reason"}),
		broadcastDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bantay_heatmap_broadcast_duration_seconds",
			Help:    "Time to collect changed cells and encode and enqueue one tick's frames.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		deliveryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bantay_heatmap_ws_delivery_lag_seconds",
			Help:    "From the start of a broadcast tick until its delta frame was written to a client's socket, per client.",
			Buckets: DeliveryLagBuckets,
		}),
		queueHighWater: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bantay_heatmap_ws_send_queue_max",
			Help: "Longest send queue of any connection at the last broadcast (bounded by send_queue).",
		}),
	}
	m.byFrame = map[string]frameCounters{}
	for _, t := range frameTypes {
		m.byFrame[t] = frameCounters{m.frames.WithLabelValues(t), m.frameBytes.WithLabelValues(t)}
	}
	for _, k := range []Kind{KindLatency, KindAttempts, KindFailures} {
		m.points[k] = map[string]prometheus.Counter{}
		for _, r := range pointResults {
			m.points[k][r] = pointsVec.WithLabelValues(k.String(), r)
		}
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{pointsVec, m.clamped, m.cells, m.streams, m.events, m.eventDrops,
		m.rebuildPoints, m.connections, m.upgradesRefuse, m.invalid, m.frames, m.frameBytes, m.encoded,
		m.coalesced, m.disconnects, m.broadcastDur, m.deliveryLag, m.queueHighWater} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// DeliveryLagBuckets are the bucket bounds (seconds) of
// bantay_heatmap_ws_delivery_lag_seconds, exported so that load tools
// measuring another hub read their figures off the same bounds.
var DeliveryLagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
