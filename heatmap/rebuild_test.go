package heatmap

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/harness/stalledstore"
)

func openTSDB(t *testing.T) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// snapshot returns the heatmap's snapshot as /api/heatmap/snapshot serves it.
func snapshot(t *testing.T, h *Heatmap) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.Handler().ServeHTTP(rec, httptest.NewRequest("GET", hub.PathSnapshot, nil))
	return rec.Body.String()
}

// TestNoBroadcastWhileRebuilding: while the rebuild reads, points are
// held and no tick judges half-read cells; when it ends the held points
// are applied and broadcast at once, without waiting for the next tick.
func TestNoBroadcastWhileRebuilding(t *testing.T) {
	h := newTestHeatmap(t, func(c *Config) { c.Hub.BroadcastInterval = time.Hour })
	gate := make(chan struct{})
	if err := h.StartRebuild(stalledstore.Queryable{Queryable: openTSDB(t), Gate: gate}); err != nil {
		t.Fatal(err)
	}
	if err := h.StartRebuild(openTSDB(t)); err == nil {
		t.Error("a second rebuild started")
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	feed(h, globeMD, now.Add(-15*time.Second), 10)
	feed(h, globeMD, now, 20)
	h.tick(now)
	if snap := snapshot(t, h); !h.Rebuilding() || !strings.Contains(snap, `"seq":0,`) || strings.Contains(snap, globeMD.ID()) ||
		!strings.Contains(snap, `"rebuilding":true`) {
		t.Fatalf("rebuilding %v; a tick ran during the rebuild, or the live points reached the cells: %s", h.Rebuilding(), snap)
	}
	// A page open during the rebuild is told, and told when it ends.
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+hub.PathWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(time.Minute)) // failsafe only
	if _, first, err := ws.ReadMessage(); err != nil || !strings.Contains(string(first), `"rebuilding":true`) {
		t.Fatalf("first frame during the rebuild: %s (%v)", first, err)
	}
	close(gate)
	if _, next, err := ws.ReadMessage(); err != nil || !strings.Contains(string(next), `"type":"delta"`) ||
		!strings.Contains(string(next), `"rebuilding":false`) || !strings.Contains(string(next), globeMD.ID()) {
		t.Fatalf("the frame after the rebuild: %s (%v), want a delta with the cell and rebuilding false", next, err)
	}
	for i := 0; i < 3000 && h.Rebuilding(); i++ { // bounded by count
		time.Sleep(10 * time.Millisecond)
	}
	if h.Rebuilding() {
		t.Fatal("the rebuild did not end")
	}
	// The rebuild's own tick, not the hourly one.
	if snap := snapshot(t, h); !strings.Contains(snap, `"count":10`) || !strings.Contains(snap, `"rebuilding":false`) {
		t.Errorf("after the rebuild the snapshot lacks the held points' 10 answers, or says it rebuilds: %s", snap)
	}
}

// TestCloseStopsARebuild: Close does not wait for a rebuild's whole read.
func TestCloseStopsARebuild(t *testing.T) {
	h, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StartRebuild(stalledstore.Queryable{Queryable: openTSDB(t), Gate: make(chan struct{})}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if h.Rebuilding() {
		t.Error("still rebuilding after Close")
	}
	if err := h.StartRebuild(openTSDB(t)); err == nil || !strings.Contains(err.Error(), "after close") {
		t.Errorf("rebuild after Close: %v", err)
	}
}
