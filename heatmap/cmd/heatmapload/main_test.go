package main

import "testing"

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
