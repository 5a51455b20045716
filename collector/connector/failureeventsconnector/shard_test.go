package failureeventsconnector

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// probeBursts sends every probe's burstMetrics from a goroutine of its own,
// all at once, each probe's exports in order as one probe's exporter sends
// them. It returns the logs sink and the count of points by result.
func probeBursts(t *testing.T, cfg *Config, probes int) (*consumertest.LogsSink, func(result string) int64) {
	t.Helper()
	sink := &consumertest.LogsSink{}
	c, tt := startConnector(t, cfg, sink)
	var wg sync.WaitGroup
	for p := range probes {
		s := dvoTimeout
		s.probe = fmt.Sprintf("p-%03d", p)
		wg.Go(func() {
			for i, v := range []float64{10, 11, 13, 13, 13} {
				md := pmetric.NewMetrics()
				appendFailures(md, s, t0.Add(time.Duration(i)*15*time.Second), v)
				_ = c.ConsumeMetrics(context.Background(), md)
			}
		})
	}
	wg.Wait()
	counts := func(result string) int64 {
		return counterValue(t, tt, "bantay_failure_events_points", "result", result)
	}
	return sink, counts
}

// recordsByProbe sums the records' failure counts by probe.
func recordsByProbe(t *testing.T, sink *consumertest.LogsSink) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			for j := 0; j < ld.ResourceLogs().At(i).ScopeLogs().Len(); j++ {
				lrs := ld.ResourceLogs().At(i).ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					a := lrs.At(k).Attributes()
					probe, _ := a.Get("probe")
					n, _ := a.Get("count")
					got[probe.AsString()] += n.Int()
				}
			}
		}
	}
	return got
}

// Exports of many probes folded at the same time, over the shards, give
// each probe exactly the burst it gives alone.
func TestConcurrentProbesFoldAsAlone(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = 10 * time.Millisecond
	const probes = 48
	sink, counts := probeBursts(t, cfg, probes)
	waitFor(t, "one record per probe", func() bool { return sink.LogRecordCount() >= probes })
	got := recordsByProbe(t, sink)
	if len(got) != probes || sink.LogRecordCount() != probes {
		t.Fatalf("%d records for %d probes, want one each: %v", sink.LogRecordCount(), len(got), got)
	}
	for probe, n := range got {
		if n != 3 {
			t.Errorf("%s: burst of %d failures, want 3", probe, n)
		}
	}
	if b, a := counts(resBaseline), counts(resAccepted); b != probes || a != 4*probes {
		t.Errorf("points: %d baseline, %d accepted; want %d and %d", b, a, probes, 4*probes)
	}
}

// max_streams bounds the connector's streams, not each shard's.
func TestMaxStreamsCountsEveryShard(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.MaxStreams = 10
	const probes = 48
	sink, counts := probeBursts(t, cfg, probes)
	waitFor(t, "the tracked probes' records", func() bool { return sink.LogRecordCount() >= cfg.MaxStreams })
	if lim := counts(resStreamLim); lim != int64(5*(probes-cfg.MaxStreams)) {
		t.Errorf("%d points over the stream limit, want %d (5 points of each of %d untracked probes)", lim, 5*(probes-cfg.MaxStreams), probes-cfg.MaxStreams)
	}
	if got := recordsByProbe(t, sink); len(got) != cfg.MaxStreams {
		t.Errorf("%d probes with events, want %d (max_streams): %v", len(got), cfg.MaxStreams, got)
	}
}
