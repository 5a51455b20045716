package rebuild

import (
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
)

// Config bounds what a rebuild that runs beside live data holds. In the
// collector's configuration it is part of the flat `heatmap:` section.
type Config struct {
	// HoldPoints is the most live points kept while a rebuild reads the
	// store (measured: 0.59 KB each for a latency histogram, 0.35 KB for
	// a counter, with a stream key of about 100 bytes). Beyond it live points are dropped from the heatmap and
	// counted; the next point of each stream after the rebuild carries the
	// increase, so nothing is lost from the windows, only placed in a later
	// slot.
	HoldPoints int `mapstructure:"rebuild_hold_points"`
}

// DefaultConfig holds about a minute of a 1M-series collector's points.
func DefaultConfig() Config { return Config{HoldPoints: 1_000_000} }

// WithDefaults fills every zero field from DefaultConfig.
func (c Config) WithDefaults() Config {
	if c.HoldPoints == 0 {
		c.HoldPoints = DefaultConfig().HoldPoints
	}
	return c
}

// Validate names a bad field. Zero takes the default.
func (c Config) Validate() error {
	if c.HoldPoints < 0 {
		return fmt.Errorf("rebuild_hold_points: must not be negative, got %d", c.HoldPoints)
	}
	return nil
}

// Hold keeps live points away from the aggregation while a rebuild reads
// the store, and applies them after it, in the order they arrived. Applied
// at once they would go wrong both ways: a stream's first live point would
// become its base and every older stored sample would then be out of order
// (the wall would lose the hour), and a rebuild that already read a point
// would see it again. Held, the aggregation gets exactly what a rebuild
// that ran before the collector was ready, then the live points, would
// give it.
type Hold struct {
	limit int

	mu      sync.Mutex
	active  bool
	dropped int // since Begin
	points  []aggregate.Point
	// bounds is the last histogram layout copied; held points with the same
	// bounds share it (every probe sends the same).
	bounds []float64

	rebuilding prometheus.Gauge
	live       *prometheus.CounterVec
}

// Results of bantay_heatmap_rebuild_live_points_total.
const (
	liveHeld     = "held"
	liveDropped  = "dropped"
	liveReplayed = "replayed"
)

// NewHold returns an inactive hold (Offer takes nothing) for cfg.
func NewHold(cfg Config) *Hold {
	cfg = cfg.WithDefaults()
	return &Hold{
		limit: cfg.HoldPoints,
		rebuilding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bantay_heatmap_rebuilding",
			Help: "1 while the heatmap rebuilds itself from the store after a start (live points are held meanwhile), else 0.",
		}),
		live: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_heatmap_rebuild_live_points_total",
			Help: "Live points that arrived while the heatmap rebuilt itself: held, replayed after the rebuild, or dropped because the hold was full (rebuild_hold_points).",
		}, []string{"result"}),
	}
}

// Collectors returns the hold's metrics, for registration.
func (h *Hold) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.rebuilding, h.live}
}

// Begin starts holding. Call it before the store is fenced (Begin of the
// rebuild) and before live points can arrive.
func (h *Hold) Begin() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.active, h.dropped = true, 0
	h.rebuilding.Set(1)
}

// Active reports whether points are being held.
func (h *Hold) Active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.active
}

// Offer keeps a copy of p while the hold is active and reports whether it
// took p (false: apply it now). A point that does not fit is dropped and
// counted, and taken (the caller must not apply it: it would overtake the
// held points of its stream).
func (h *Hold) Offer(p *aggregate.Point) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.active {
		return false
	}
	if len(h.points) >= h.limit {
		h.dropped++
		h.live.WithLabelValues(liveDropped).Inc()
		return true
	}
	c := *p
	// The exporter reuses its point's slices for the next one.
	c.Stream = slices.Clone(p.Stream)
	if p.Counts != nil {
		c.Counts = slices.Clone(p.Counts)
	}
	if p.Bounds != nil {
		if !slices.Equal(h.bounds, p.Bounds) {
			h.bounds = slices.Clone(p.Bounds)
		}
		c.Bounds = h.bounds
	}
	h.points = append(h.points, c)
	h.live.WithLabelValues(liveHeld).Inc()
	return true
}

// Release applies every held point with apply, in arrival order, including
// those offered while it runs, then ends the hold; it returns how many it
// applied and how many were dropped since Begin. Points offered after it
// returns are the caller's to apply. (While it applies a batch the next one
// fills, so up to twice the limit can be in memory for a moment.)
func (h *Hold) Release(apply func(*aggregate.Point)) (replayed, dropped int) {
	for {
		h.mu.Lock()
		batch := h.points
		h.points = nil
		if len(batch) == 0 {
			h.active = false
			h.bounds = nil
			h.rebuilding.Set(0)
			dropped = h.dropped
			h.mu.Unlock()
			return replayed, dropped
		}
		h.mu.Unlock()
		// Outside the lock: live points keep arriving (and are held)
		// while a large batch is applied.
		for i := range batch {
			apply(&batch[i])
		}
		replayed += len(batch)
		h.live.WithLabelValues(liveReplayed).Add(float64(len(batch)))
	}
}
