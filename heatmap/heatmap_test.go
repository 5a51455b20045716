package heatmap

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config (all defaults) is invalid: %v", err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Aggregation: aggregate.Config{Resolution: 500 * time.Millisecond}}, "resolution"},
		{Config{Aggregation: aggregate.Config{History: 50 * time.Minute, Resolution: 7 * time.Minute}}, "history"},
		{Config{Aggregation: aggregate.Config{Windows: []time.Duration{time.Minute, 70 * time.Second}}}, "windows[1]"},
		{Config{Hub: hub.Config{DefaultWindow: 2 * time.Minute}}, "default_window"},
		{Config{Aggregation: aggregate.Config{Bounds: []float64{1, 5, 3}}}, "bounds[2]"},
		{Config{Hub: hub.Config{SendQueue: 1}}, "send_queue"},
		{Config{Hub: hub.Config{PingInterval: time.Minute, PongTimeout: 30 * time.Second}}, "pong_timeout"},
		{Config{Aggregation: aggregate.Config{Events: aggregate.EventsConfig{DegradedRatio: 1.5, RecoveredRatio: 1.6}}}, "events.recovered_ratio"},
		{Config{Aggregation: aggregate.Config{Events: aggregate.EventsConfig{DegradedLoss: 0.01, RecoveredLoss: 0.02}}}, "events.recovered_loss"},
		{Config{Aggregation: aggregate.Config{Events: aggregate.EventsConfig{DegradedMinDelta: 10, RecoveredMinDelta: 10}}}, "events.recovered_min_delta_ms"},
		{Config{Aggregation: aggregate.Config{Events: aggregate.EventsConfig{DegradedMinDelta: -1}}}, "events.degraded_min_delta_ms"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	// recovered_min_delta_ms follows degraded_min_delta_ms unless set.
	if e := (Config{Aggregation: aggregate.Config{Events: aggregate.EventsConfig{DegradedMinDelta: 50}}}).withDefaults().Aggregation.Events; e.RecoveredMinDelta != 25 {
		t.Errorf("recovered_min_delta_ms with degraded_min_delta_ms 50: %g, want 25", e.RecoveredMinDelta)
	}
	if _, err := New(Config{Hub: hub.Config{SendQueue: 1}}, nil, nil); err == nil || !strings.Contains(err.Error(), "send_queue") {
		t.Errorf("New accepted an invalid config: %v", err)
	}
}

func TestMetricsRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := New(Config{}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := New(Config{}, reg, nil); err == nil {
		t.Fatal("a second heatmap on the same registry should report the duplicate metrics")
	}
}

func TestSubscribersGetEvents(t *testing.T) {
	h := newTestHeatmap(t, nil)
	got := make(chan pathstate.Event, 4)
	h.Subscribe(func(e pathstate.Event) { got <- e })
	feed(h, globeMD, t0, 10)
	feed(h, globeMD, t0.Add(15*time.Second), 20)
	h.tick(t0.Add(16 * time.Second))
	h.tick(t0.Add(5 * time.Minute)) // silence: stale
	select {
	case e := <-got:
		if e.Kind != pathstate.Stale || e.Cell != globeMD || !strings.Contains(e.Reason, "no data for") {
			t.Fatalf("got %v, want a stale event for %v", e, globeMD)
		}
	case <-time.After(30 * time.Second): // failsafe only
		t.Fatal("no event delivered")
	}
}

func TestCloseDisconnectsClientsWithReason(t *testing.T) {
	h, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+hub.PathWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ReadMessage(); err != nil { // the snapshot
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // a delta that was already on its way
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "server shutting down" {
			t.Fatalf("after Close: %v, want 1001 'server shutting down'", err)
		}
		break
	}
	if err := h.Start(context.Background()); err == nil {
		t.Error("Start after Close should fail")
	}
}

// TestStartWithEventsPending: the first tick at Start finds old data (as
// after a Rebuild) and emits stale events; Start must not deadlock on the
// event dispatch.
func TestStartWithEventsPending(t *testing.T) {
	h := newTestHeatmap(t, nil)
	got := make(chan pathstate.Event, 4)
	h.Subscribe(func(e pathstate.Event) { got <- e })
	old := time.Now().Add(-10 * time.Minute)
	feed(h, globeMD, old, 10)
	feed(h, globeMD, old.Add(15*time.Second), 20)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Kind != pathstate.Stale {
			t.Fatalf("got %v, want stale", e)
		}
	case <-time.After(30 * time.Second): // failsafe only
		t.Fatal("no stale event after Start")
	}
}

// t0 is aligned to a 15 s slot so tests can reason in whole slots.
var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

var globeMD = pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}

func newTestHeatmap(t testing.TB, mod func(*Config)) *Heatmap {
	t.Helper()
	var cfg Config
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// feed hands key a cumulative histogram of n samples of 18 ms at time at,
// from a probe that started just before t0.
func feed(h *Heatmap, key pathstate.CellKey, at time.Time, n uint64) {
	counts := make([]uint64, len(aggregate.DefaultBounds)+1)
	counts[9] = n // (15, 20]
	h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte("h" + key.ID()), Cell: key,
		Start: t0.Add(-10 * time.Second), Time: at, Bounds: aggregate.DefaultBounds, Counts: counts, Sum: 18 * float64(n)})
}
