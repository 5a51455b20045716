package logthrottle

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestOneLinePerKeyPerInterval(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := New(zap.New(core), time.Minute)
	at := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return at }

	for range 3 {
		l.Warn("a", "bad a")
	}
	l.Warn("b", "bad b")
	at = at.Add(59 * time.Second)
	if l.Warn("a", "bad a") {
		t.Error("a logged again within the interval")
	}
	at = at.Add(time.Second)
	if !l.Warn("a", "bad a") {
		t.Error("a not logged after the interval")
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	if want := []string{"bad a", "bad b", "bad a"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("logged %q, want %q", got, want)
	}
}

func TestConcurrentCallersLogOnce(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := New(zap.New(core), time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				l.Warn("k", "bad")
			}
		})
	}
	wg.Wait()
	if n := logs.Len(); n != 1 {
		t.Errorf("%d lines for one key within the interval, want 1", n)
	}
}

// TestSuppressedCountAndBoundedKeys: a line says how many were held back
// for its key; made-up keys past MaxKeys are not remembered (nor logged)
// until the old ones are idle for an interval.
func TestSuppressedCountAndBoundedKeys(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := New(zap.New(core), time.Minute)
	at := time.Unix(1_800_000_000, 0)
	l.SetClock(func() time.Time { return at })
	for range 4 {
		l.Warn("k", "bad")
	}
	at = at.Add(time.Minute)
	l.Warn("k", "bad")
	if all := logs.All(); len(all) != 2 || all[0].ContextMap()[SuppressedField] != int64(0) || all[1].ContextMap()[SuppressedField] != int64(3) {
		t.Fatalf("lines %v: want two, the second saying 3 were held back", all)
	}
	for i := range MaxKeys + 10 {
		l.Warn(string(rune(0x4e00+i)), "made up")
	}
	if n := len(l.last); n != MaxKeys {
		t.Errorf("remembers %d keys, want at most %d", n, MaxKeys)
	}
	at = at.Add(time.Minute)
	if !l.Warn("new", "fresh") {
		t.Error("a new key is not logged after the old ones went idle")
	}
}
