// Package heatmap is Bantay's live latency heatmap: it aggregates probe
// measurements into cells keyed by (src_city, dst_city, carrier,
// network_type), each with sliding windows of merged histograms (quantiles
// computed exactly as Prometheus's histogram_quantile does), loss, staleness
// and a trend against its own baseline, keeps an hour of time × latency
// buckets per cell for drill-down, emits path state change events, and
// serves it all to browsers over a versioned websocket protocol
// (docs/websocket-protocol.md, docs/heatmap.md).
//
// It does not depend on the collector: the heatmap exporter feeds it
// cumulative points (Observe), and Rebuild refills it from the TSDB.
package heatmap

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Heatmap is the aggregation plus its websocket hub. Create it with New,
// feed it with Observe, serve Handler, and Close it at shutdown.
type Heatmap struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	agg *aggregator
	hub *hub
	srv *server

	mu      sync.Mutex
	subs    []chan pathstate.Event
	started bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New validates cfg (zero fields take defaults), registers the heatmap's
// metrics with reg (nil: not registered) and returns a Heatmap that is
// ready for Observe and Handler; Start begins broadcasting.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Heatmap, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("heatmap config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("heatmap metrics: %w", err)
	}
	agg := newAggregator(cfg, m)
	h := &Heatmap{cfg: cfg, log: logger, m: m, agg: agg, stop: make(chan struct{})}
	h.hub = newHub(cfg, agg, m, logger)
	h.srv = newServer(h.hub)
	return h, nil
}

// Config returns the effective configuration (defaults filled in), with
// the gazetteer in use now (see SetGazetteer).
func (h *Heatmap) Config() Config {
	c := h.cfg
	c.Gazetteer = h.Gazetteer()
	return c
}

// Gazetteer returns the gazetteer in use now.
func (h *Heatmap) Gazetteer() *gazetteer.Gazetteer { return h.hub.parser.gaz.Load() }

// SetGazetteer replaces the gazetteer that orders the wall's cities north
// to south, gives them region, island group and map position, and
// canonicalises carrier and network type filters; nil restores the
// shipped one. The collector's citytag processor hands over the gazetteer
// it tags with (through the bantay extension), so a city an operator adds
// there is placed on the wall too. Safe for concurrent use at any time:
// snapshots carry the new cities at once and open pages get them with the
// next delta.
func (h *Heatmap) SetGazetteer(g *gazetteer.Gazetteer) {
	if g == nil {
		g = gazetteer.Default()
	}
	h.hub.setGazetteer(g)
}

// Observe feeds one cumulative data point. It is safe for concurrent use,
// never blocks on clients, and counts every point it cannot use in
// bantay_heatmap_points_total{result!="accepted"}.
func (h *Heatmap) Observe(p *Point) { h.agg.observe(p) }

// Start begins the broadcast loop (one tick per BroadcastInterval). The
// context is only for the start itself; Close stops the loop.
func (h *Heatmap) Start(_ context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("heatmap: start after close")
	}
	if h.started {
		h.mu.Unlock()
		return nil
	}
	h.started = true
	h.wg.Add(1)
	h.mu.Unlock()
	// The first tick synchronously (and outside h.mu, which event dispatch
	// takes), so a wall opened right after a restart and Rebuild sees the
	// cells at once.
	h.tick(time.Now())
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.cfg.BroadcastInterval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case now := <-t.C:
				h.tick(now)
			}
		}
	}()
	return nil
}

// tick runs one broadcast and hands its events to the subscribers.
func (h *Heatmap) tick(now time.Time) {
	events := h.hub.broadcast(now)
	if len(events) == 0 {
		return
	}
	// Sends are non-blocking, so holding the lock is brief; it keeps Close
	// from closing a channel under a send.
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs
	for _, e := range events {
		h.m.events.WithLabelValues(string(e.Kind)).Inc()
		h.log.Info("heatmap path state changed", "event", string(e.Kind), "src_city", e.Cell.SrcCity,
			"dst_city", e.Cell.DstCity, "carrier", e.Cell.Carrier, "network_type", e.Cell.NetworkType,
			"reason", e.Reason, "p95_before_ms", e.P95Before, "p95_after_ms", e.P95After, "loss", e.Loss)
		for _, ch := range subs {
			select {
			case ch <- e:
			default:
				h.m.eventDrops.Inc()
			}
		}
	}
}

// Subscribe calls fn for every path state change, in order, from a
// goroutine of its own: a slow fn delays only itself, and when its queue
// (Events.Buffer) is full further events for it are dropped and counted in
// bantay_heatmap_event_drops_total. Subscriptions end at Close.
func (h *Heatmap) Subscribe(fn func(pathstate.Event)) {
	ch := make(chan pathstate.Event, h.cfg.Events.Buffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.subs = append(h.subs, ch)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for e := range ch {
			fn(e)
		}
	}()
}

// Connections returns the number of open websocket connections.
func (h *Heatmap) Connections() int { return h.hub.connCount() }

// Handler serves /ws, /api/heatmap/snapshot and /api/heatmap/drilldown
// (the full paths; mount it on those paths or on "/").
func (h *Heatmap) Handler() http.Handler { return h.srv.mux }

// Paths lists the URL paths Handler serves.
func Paths() []string { return append([]string(nil), paths...) }

// Close disconnects all clients (1001), stops the broadcast loop and the
// event subscribers. It is safe to call more than once.
func (h *Heatmap) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.stop)
	for _, ch := range h.subs {
		close(ch)
	}
	h.subs = nil
	h.mu.Unlock()
	h.hub.close()
	h.wg.Wait()
	return nil
}
