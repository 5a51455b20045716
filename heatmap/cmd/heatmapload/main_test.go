package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

func TestLagHistQuantiles(t *testing.T) {
	var h lagHist
	for ms := int64(1); ms <= 100; ms++ {
		h.add(ms)
	}
	h.add(-5)     // clock skew: counted as 0
	h.add(999999) // beyond the range: the last bucket
	if got := h.quantile(0.5); got != 50 {
		t.Errorf("p50 = %d, want 50", got)
	}
	if got := h.quantile(0.99); got != 100 {
		t.Errorf("p99 = %d, want 100", got)
	}
	if got := h.max(); got != 60000 {
		t.Errorf("max = %d, want 60000", got)
	}
}

func TestFrameTime(t *testing.T) {
	if ms, ok := frameTime([]byte(`{"v":1,"type":"delta","seq":4,"time":1795665601000,"window":{}}`)); !ok || ms != 1795665601000 {
		t.Fatalf("got %d %v", ms, ok)
	}
	if _, ok := frameTime([]byte(`{"v":1,"type":"pong"}`)); ok {
		t.Fatal("found a time in a frame without one")
	}
}

// TestNaiveHubServesTheRealFrames: a client of the naive peer gets a
// snapshot, then the real hub's deltas byte for byte as the hub's own
// client gets them.
func TestNaiveHubServesTheRealFrames(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := heatmap.New(heatmap.Config{Hub: hub.Config{BroadcastInterval: 50 * time.Millisecond}}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := startNaive(h, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n)
	defer srv.Close()
	dial := func(url string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+hub.PathWS, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		return c
	}
	naive := dial(srv.URL)
	defer naive.Close()
	real := httptest.NewServer(h.Handler())
	defer real.Close()
	direct := dial(real.URL)
	defer direct.Close()
	for i := 0; n.count() == 0 || h.Connections() < 2; i++ { // the relay and the direct client
		if i == 1000 {
			t.Fatalf("connections: naive %d, real %d", n.count(), h.Connections())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, data, err := naive.ReadMessage(); err != nil || !bytes.Contains(data, []byte(`"type":"snapshot"`)) {
		t.Fatalf("first naive frame: %.80s, %v", data, err)
	}
	if _, _, err := direct.ReadMessage(); err != nil { // the direct client's snapshot
		t.Fatal(err)
	}
	key := pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}
	counts := make([]uint64, len(aggregate.DefaultBounds)+1)
	counts[3] = 5
	now := time.Now()
	h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte("s"), Cell: key, Start: now, Time: now,
		Bounds: aggregate.DefaultBounds, Counts: counts, Sum: 50})
	_, want, err := direct.ReadMessage()
	if err != nil || !isDelta(want) {
		t.Fatalf("direct: %.80s, %v", want, err)
	}
	_, got, err := naive.ReadMessage()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("naive got %.120s (%v), want the hub's %.120s", got, err, want)
	}
}
