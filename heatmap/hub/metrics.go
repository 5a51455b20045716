package hub

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the hub's: connections, frames and their delivery.
type metrics struct {
	connections    prometheus.Gauge
	upgradesRefuse *prometheus.CounterVec
	invalid        *prometheus.CounterVec
	frames         *prometheus.CounterVec
	frameBytes     *prometheus.CounterVec
	encoded        prometheus.Counter
	coalesced      prometheus.Counter
	blockingWrites prometheus.Counter
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

func newMetrics() *metrics {
	m := &metrics{
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
		blockingWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_heatmap_ws_blocking_writes_total",
			Help: "Write-outs that a connection's own goroutine finished the blocking way (bounded by write_timeout): its socket was full, or it is a TLS connection.",
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
	return m
}

// collectors are the metrics to register.
func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connections, m.upgradesRefuse, m.invalid, m.frames, m.frameBytes, m.encoded,
		m.coalesced, m.blockingWrites, m.disconnects, m.broadcastDur, m.deliveryLag, m.queueHighWater}
}

// DeliveryLagBuckets are the bucket bounds (seconds) of
// bantay_heatmap_ws_delivery_lag_seconds, exported so that load tools
// measuring another hub read their figures off the same bounds.
var DeliveryLagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
