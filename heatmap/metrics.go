package heatmap

import "github.com/prometheus/client_golang/prometheus"

// metrics are the heatmap's own, beside its packages' (aggregate, hub):
// the path state changes it hands to subscribers, and the rebuild.
type metrics struct {
	events        *prometheus.CounterVec
	eventDrops    prometheus.Counter
	rebuildPoints prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
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
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.events, m.eventDrops, m.rebuildPoints}
}
