package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAwaitSeriesAfterALossyReplay: after a kill -9 the WAL replay may
// restore fewer series than the head held (the TSDB logs "Unknown series
// references"). The wait must end once the count is steady and say what the
// head holds; it used to wait 10 minutes for a count that could not come
// and fail the whole run.
func TestAwaitSeriesAfterALossyReplay(t *testing.T) {
	var head, rebuilding atomic.Int64
	rebuilding.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE prometheus_tsdb_head_series gauge\nprometheus_tsdb_head_series %d\nbantay_heatmap_rebuilding %d\n",
			head.Load(), rebuilding.Load())
	}))
	defer srv.Close()
	m := metricsEndpoint{url: srv.URL}
	launched := time.Now()
	go func() {
		time.Sleep(200 * time.Millisecond)
		head.Store(997) // of 1,000
	}()
	s, n, err := m.awaitSeries(context.Background(), 1000, launched)
	if err != nil || n != 997 {
		t.Fatalf("awaitSeries: %d series (%v), want 997 once steady", n, err)
	}
	if s < 0.2 || s > time.Since(launched).Seconds()-9 {
		t.Errorf("reported %.2f s, want the time the head first held 997 (0.2 s in), not when the wait gave up", s)
	}
	head.Store(1000)
	if _, n, err := m.awaitSeries(context.Background(), 1000, launched); err != nil || n != 1000 {
		t.Errorf("a full head: %d (%v)", n, err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		rebuilding.Store(0)
	}()
	if s, err := m.awaitRebuilt(context.Background(), launched); err != nil || s <= 0 {
		t.Errorf("awaitRebuilt: %.2f s (%v)", s, err)
	}
}
