package events

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func ev(kind Kind, i int) Event {
	return Event{Kind: kind, Time: time.Unix(int64(i), 0), Body: fmt.Sprint(i)}
}

func TestBusDeliversInOrderToEverySubscriber(t *testing.T) {
	b, err := NewBus(10, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch1, cancel1 := b.Subscribe()
	ch2, cancel2 := b.Subscribe()
	defer cancel2()
	for i := range 5 {
		b.Publish(ev(KindRulesReloaded, i))
	}
	for _, ch := range []<-chan Event{ch1, ch2} {
		for i := range 5 {
			if got := <-ch; got.Body != fmt.Sprint(i) {
				t.Fatalf("event %d: got body %q", i, got.Body)
			}
		}
	}
	cancel1()
	cancel1() // idempotent
	if _, ok := <-ch1; ok {
		t.Fatal("channel still open after cancel")
	}
	b.Publish(ev(KindRulesReloaded, 5))
	if got := <-ch2; got.Body != "5" {
		t.Fatalf("remaining subscriber got %q", got.Body)
	}
}

func TestBusNeverBlocksAndCountsDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := NewBus(3, reg)
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := b.Subscribe()
	defer cancel()
	// Nobody reads: the first 3 fit, the rest are dropped, and Publish
	// returns every time (the test would hang otherwise).
	for i := range 10 {
		b.Publish(ev(KindProbeRejected, i))
	}
	b.Publish(ev(KindRulesReloaded, 10))
	if got := testutil.ToFloat64(b.dropped.WithLabelValues("probe_rejected")); got != 7 {
		t.Errorf("dropped{probe_rejected} = %v, want 7", got)
	}
	if got := testutil.ToFloat64(b.dropped.WithLabelValues("rules_reloaded")); got != 1 {
		t.Errorf("dropped{rules_reloaded} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.published.WithLabelValues("probe_rejected")); got != 10 {
		t.Errorf("published{probe_rejected} = %v, want 10", got)
	}
	for i := range 3 {
		if got := <-ch; got.Body != fmt.Sprint(i) {
			t.Fatalf("kept event %d has body %q: the oldest must be kept", i, got.Body)
		}
	}
	// The registered names are the documented ones.
	n, err := testutil.GatherAndCount(reg, "bantay_events_dropped_total", "bantay_events_published_total")
	if err != nil || n != 4 {
		t.Errorf("gathered %d series (err %v), want 4", n, err)
	}
}

func TestBusBacklogUntilFirstSubscriber(t *testing.T) {
	b, err := NewBus(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b.Publish(ev(KindRulesReloaded, i))
	}
	if got := testutil.ToFloat64(b.dropped.WithLabelValues("rules_reloaded")); got != 1 {
		t.Errorf("backlog beyond capacity: dropped = %v, want 1", got)
	}
	ch, cancel := b.Subscribe()
	defer cancel()
	for i := range 2 {
		if got := <-ch; got.Body != fmt.Sprint(i) {
			t.Fatalf("backlog event %d: body %q", i, got.Body)
		}
	}
	// The backlog goes to the first subscriber only.
	ch2, cancel2 := b.Subscribe()
	defer cancel2()
	select {
	case e := <-ch2:
		t.Fatalf("second subscriber got backlog event %q", e.Body)
	default:
	}
}

func TestBusClose(t *testing.T) {
	b, err := NewBus(4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := b.Subscribe()
	b.Close()
	b.Close()
	if _, ok := <-ch; ok {
		t.Fatal("subscriber channel open after Close")
	}
	b.Publish(ev(KindRulesReloaded, 1))
	if got := testutil.ToFloat64(b.dropped.WithLabelValues("rules_reloaded")); got != 1 {
		t.Errorf("publish after close: dropped = %v, want 1", got)
	}
	ch2, cancel := b.Subscribe()
	cancel()
	if _, ok := <-ch2; ok {
		t.Fatal("subscribe after close returned an open channel")
	}
}

func TestNewBusErrors(t *testing.T) {
	if _, err := NewBus(0, nil); err == nil {
		t.Error("capacity 0 accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewBus(1, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewBus(1, reg); err == nil {
		t.Error("second bus on the same registry: no error for the duplicate metrics")
	}
}

// TestBusConcurrent is for the race detector: publishers, subscribers that
// come and go, and a Close, all at once.
func TestBusConcurrent(t *testing.T) {
	b, err := NewBus(8, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				b.Publish(ev(KindProbeRejected, p*1000+i))
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				ch, cancel := b.Subscribe()
				for range 5 {
					select {
					case <-ch:
					default:
					}
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	b.Close()
}
