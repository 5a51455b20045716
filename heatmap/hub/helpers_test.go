package hub

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
)

// t0 is aligned to a 15 s slot so tests can reason in whole slots.
var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// testHeatmap is a hub over its own aggregation (with the aggregation's
// defaults), assembled as package heatmap assembles them, minus the
// broadcast loop: tests tick it themselves.
type testHeatmap struct{ *Hub }

// newHub builds one with cfg, registering its metrics with reg (nil: none).
func newHub(cfg Config, reg prometheus.Registerer) (*testHeatmap, error) {
	agg, err := aggregate.New(aggregate.Config{})
	if err != nil {
		return nil, err
	}
	h, err := New(cfg, agg, nil, nil)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		for _, c := range h.Collectors() {
			reg.MustRegister(c)
		}
	}
	return &testHeatmap{h}, nil
}

// newTestHeatmap is newHub with the default config changed by mod, closed
// at the end of the test.
func newTestHeatmap(t testing.TB, mod func(*Config)) *testHeatmap {
	t.Helper()
	var cfg Config
	if mod != nil {
		mod(&cfg)
	}
	h, err := newHub(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// tick is one broadcast at now.
func (h *testHeatmap) tick(now time.Time) { h.Broadcast(now) }

// Observe feeds the aggregation.
func (h *testHeatmap) Observe(p *aggregate.Point) { h.agg.Observe(p) }
