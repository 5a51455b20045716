// Package heatmap is Bantay's live latency heatmap, assembled: the
// aggregation (heatmap/aggregate: cells, windows, quantiles, loss,
// staleness, path state changes), the websocket hub and its HTTP handlers
// (heatmap/hub), speaking heatmap/wire's protocol, refilled at start from
// the store (heatmap/rebuild) in the background while live points are held.
// Heatmap runs the broadcast loop and hands path state changes
// (heatmap/pathstate) to subscribers (docs/heatmap.md,
// docs/websocket-protocol.md).
//
// It does not depend on the collector: the heatmap exporter feeds it
// cumulative points (Observe), and StartRebuild refills it from the TSDB.
package heatmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/rebuild"
	"github.com/bantay-noc/bantay/heatmap/wire"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Heatmap is the aggregation plus its websocket hub. Create it with New,
// feed it with Observe, serve Handler, and Close it at shutdown.
type Heatmap struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	agg *aggregate.Aggregator
	hub *hub.Hub
	// hold keeps live points from agg while a rebuild reads the store.
	hold *rebuild.Hold

	mu      sync.Mutex
	subs    []chan pathstate.Event
	started bool
	closed  bool
	stop    chan struct{}
	// cancelRebuild stops a running rebuild (Close); nil when none ran.
	cancelRebuild context.CancelFunc
	wg            sync.WaitGroup
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
	agg, err := aggregate.New(cfg.Aggregation)
	if err != nil {
		return nil, fmt.Errorf("heatmap config: %w", err)
	}
	hb, err := hub.New(cfg.Hub, agg, cfg.Gazetteer, logger)
	if err != nil {
		return nil, fmt.Errorf("heatmap config: %w", err)
	}
	h := &Heatmap{cfg: cfg, log: logger, m: newMetrics(), agg: agg, hub: hb, hold: rebuild.NewHold(cfg.Rebuild),
		stop: make(chan struct{})}
	if reg != nil {
		var errs []error
		for _, c := range slices.Concat(agg.Collectors(), hb.Collectors(), h.hold.Collectors(), h.m.collectors()) {
			if err := reg.Register(c); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			hb.Close() // its writers are running
			return nil, fmt.Errorf("heatmap metrics: %w", err)
		}
	}
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
func (h *Heatmap) Gazetteer() *gazetteer.Gazetteer { return h.hub.Gazetteer() }

// SetGazetteer replaces the gazetteer that orders the wall's cities north
// to south, gives them region, island group and map position, and
// canonicalises carrier and network type filters; nil restores the
// shipped one. The collector's citytag processor hands over the gazetteer
// it tags with (through the bantay extension), so a city an operator adds
// there is placed on the wall too. Safe for concurrent use at any time:
// snapshots carry the new cities at once and open pages get them with the
// next delta.
func (h *Heatmap) SetGazetteer(g *gazetteer.Gazetteer) { h.hub.SetGazetteer(g) }

// Observe feeds one cumulative data point. It is safe for concurrent use,
// never blocks on clients, and counts every point it cannot use in
// bantay_heatmap_points_total{result!="accepted"}. While a rebuild runs the
// point is held and applied after it (StartRebuild).
func (h *Heatmap) Observe(p *aggregate.Point) {
	if !h.hold.Offer(p) {
		h.agg.Observe(p)
	}
}

// PublishEvents shows events in every client's feed (hub.PublishEvents).
func (h *Heatmap) PublishEvents(items []wire.FeedEvent) { h.hub.PublishEvents(items) }

// StartRebuild refills the cells from the store (heatmap/rebuild) as of
// now, so a collector restart does not blank the wall, without keeping the
// collector from accepting data meanwhile: it fences the store at once (the
// rebuild reads what the store held now, up to now) and reads it in the
// background. Points given to Observe meanwhile are held (up to
// rebuild_hold_points) and applied after the stored ones, in the order they
// came, so each counts once, after the history it continues. No broadcast
// runs while it reads (a half-read cell would be judged stale or degraded
// for nothing); the first one after it sends every cell. It fails only if
// the store cannot be opened for reading; a failure while reading is logged
// and the wall fills from live data. Call it before live points arrive.
func (h *Heatmap) StartRebuild(q storage.Queryable) error {
	return h.startRebuild(q, time.Now())
}

func (h *Heatmap) startRebuild(q storage.Queryable, now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return errors.New("heatmap: rebuild after close")
	case h.cancelRebuild != nil:
		return errors.New("heatmap: rebuild started twice")
	}
	h.hold.Begin() // before the fence: no live point may slip between
	fenced, err := rebuild.Begin(q, h.agg, now)
	if err != nil {
		h.hold.Release(h.agg.Observe)
		return err
	}
	h.hub.SetRebuilding(true)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancelRebuild = cancel
	h.wg.Go(func() {
		defer cancel()
		h.readRebuild(ctx, fenced)
	})
	return nil
}

// readRebuild reads the fenced store, applies the held live points, says
// how it went and broadcasts the result.
func (h *Heatmap) readRebuild(ctx context.Context, fenced *rebuild.Fenced) {
	began := time.Now()
	res, err := fenced.Read(ctx)
	h.m.rebuildPoints.Add(float64(res.Samples))
	replayed, dropped := h.hold.Release(h.agg.Observe)
	h.hub.SetRebuilding(false)
	args := []any{"duration", time.Since(began).Round(time.Millisecond), "cells", h.agg.CellCount(),
		"samples", res.Samples, "from", res.From.UTC(), "to", res.To.UTC(),
		"live_points_replayed", replayed, "live_points_dropped", dropped}
	switch {
	case ctx.Err() != nil:
		h.log.Info("heatmap rebuild stopped: the heatmap closed", args...)
	case err != nil:
		h.log.Warn("heatmap rebuild from the store failed; it fills from live data", append(args, "error", err)...)
	default:
		h.log.Info("heatmap rebuilt from the store", args...)
	}
	h.mu.Lock()
	started := h.started
	h.mu.Unlock()
	if started {
		// Pages opened during the rebuild get the cells now.
		h.tick(time.Now())
	}
}

// Rebuilding reports whether a rebuild is reading the store (live points
// are held meanwhile).
func (h *Heatmap) Rebuilding() bool { return h.hold.Active() }

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
	// takes), so a wall opened right after a start sees the cells at once
	// (during a rebuild, tick does nothing: the rebuild's end ticks).
	h.tick(time.Now())
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.cfg.Hub.BroadcastInterval)
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
	if h.hold.Active() {
		return
	}
	events := h.hub.Broadcast(now)
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
	ch := make(chan pathstate.Event, h.cfg.Aggregation.Events.Buffer)
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
func (h *Heatmap) Connections() int { return h.hub.Connections() }

// Handler serves /ws, /api/heatmap/snapshot and /api/heatmap/drilldown
// (the full paths; mount it on those paths or on "/").
func (h *Heatmap) Handler() http.Handler { return h.hub.Handler() }

// Paths lists the URL paths Handler serves.
func Paths() []string { return hub.Paths() }

// Close disconnects all clients (1001), stops the broadcast loop and the
// event subscribers. It is safe to call more than once.
func (h *Heatmap) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	if h.cancelRebuild != nil {
		h.cancelRebuild()
	}
	close(h.stop)
	for _, ch := range h.subs {
		close(ch)
	}
	h.subs = nil
	h.mu.Unlock()
	h.hub.Close()
	h.wg.Wait()
	return nil
}
