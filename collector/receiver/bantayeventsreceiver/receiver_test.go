package bantayeventsreceiver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"github.com/bantay-noc/bantay/internal/harness/configtest"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/collector/receiver/bantayeventsreceiver/internal/metadata"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/events"
)

var (
	bantayID = component.MustNewID("bantay")
	dvoMnl   = pathstate.CellKey{SrcCity: "Davao", DstCity: "Manila", Carrier: "Globe", NetworkType: "5g"}
)

// waitFor polls cond for up to 20 s; the bound only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startReceiver(t *testing.T, cfg *Config, host component.Host, next consumer.Logs) (receiver.Logs, *componenttest.Telemetry, error) {
	t.Helper()
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tt.NewTelemetrySettings()
	r, err := NewFactory().CreateLogs(context.Background(), set, cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), host); err != nil {
		return nil, tt, err
	}
	t.Cleanup(func() {
		// Bounded, so that a failed test cannot hang in its cleanup.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
	})
	return r, tt, nil
}

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = 20 * time.Millisecond
	return cfg
}

// records returns every record the sink got, in order.
func records(sink *consumertest.LogsSink) []plog.LogRecord {
	var out []plog.LogRecord
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					out = append(out, lrs.At(k))
				}
			}
		}
	}
	return out
}

func kindOf(lr plog.LogRecord) string {
	v, _ := lr.Attributes().Get(events.AttrKind)
	return v.AsString()
}

func counterSum(t *testing.T, tt *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

func TestHeatmapAndBusEventsBecomeLogRecords(t *testing.T) {
	hm := newTestHeatmap(t)
	bus, err := events.NewBus(16, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Published before the receiver subscribes (start order is the
	// collector's choice): kept in the bus's backlog.
	bus.Publish(events.RulesReloaded(time.Now(), 2, 9, nil))

	sink := &consumertest.LogsSink{}
	_, tt, err := startReceiver(t, testConfig(), hosttest.With(&hosttest.Provider{Map: hm, Bus: bus}), sink)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	newPath(hm, "dvo-01", dvoMnl, now.Add(-51*time.Second)).degrade(now)
	startHeatmap(t, hm)
	bus.Publish(events.ProbeRejected(time.Now(), "x-01", "unknown_probe", `probe "x-01" is not in the registry`, 3))

	waitFor(t, "three records", func() bool { return sink.LogRecordCount() >= 3 })
	got := map[string]plog.LogRecord{}
	for _, lr := range records(sink) {
		got[kindOf(lr)] = lr
	}
	deg, ok := got["path_degraded"]
	if !ok {
		t.Fatalf("no path_degraded among %v", got)
	}
	attrs := deg.Attributes().AsRaw()
	for k, want := range map[string]any{
		"service": "bantay", "src_city": "Davao", "carrier": "Globe", "island_group": "Mindanao",
		"dst_city": "Manila", "network_type": "5g", "reason": "latency", "dst_island_group": "Luzon", "window": "5s",
	} {
		if attrs[k] != want {
			t.Errorf("path_degraded %s = %#v, want %#v", k, attrs[k], want)
		}
	}
	before, _ := attrs["p95_before_ms"].(float64)
	after, _ := attrs["p95_after_ms"].(float64)
	if !(before > 15 && before <= 20 && after > 150 && after <= 200) {
		t.Errorf("p95 before %v after %v: want the 20 ms baseline and the 200 ms spike", before, after)
	}
	if !strings.HasPrefix(deg.Body().Str(), "Davao → Manila on Globe 5g degraded (latency): p95 ") {
		t.Errorf("body %q", deg.Body().Str())
	}
	if lr, ok := got["rules_reloaded"]; !ok || lr.Body().Str() != "rules loaded: 2 groups, 9 rules" {
		t.Errorf("rules_reloaded missing or wrong: %v", got)
	}
	if lr, ok := got["probe_rejected"]; !ok || lr.Attributes().AsRaw()["probe"] != "x-01" {
		t.Errorf("probe_rejected missing or wrong: %v", got)
	}
	if n := counterSum(t, tt, "otelcol_receiver_accepted_log_records"); n < 3 {
		t.Errorf("otelcol_receiver_accepted_log_records = %d", n)
	}
}

func TestShutdownHandsOnQueuedBusEvents(t *testing.T) {
	bus, _ := events.NewBus(200, nil)
	sink := &consumertest.LogsSink{}
	cfg := testConfig()
	cfg.FlushInterval = time.Minute // only shutdown flushes
	r, _, err := startReceiver(t, cfg, hosttest.WithBus(bus), sink)
	if err != nil {
		t.Fatal(err)
	}
	for range 150 {
		bus.Publish(events.RulesReloaded(time.Now(), 1, 1, nil))
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.LogRecordCount(); n != 150 {
		t.Errorf("%d records after shutdown, want all 150 published", n)
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestConsumerErrorsCountedNotRetried(t *testing.T) {
	var calls atomic.Int64
	next, err := consumer.NewLogs(func(context.Context, plog.Logs) error {
		calls.Add(1)
		return errors.New("sending queue is full")
	})
	if err != nil {
		t.Fatal(err)
	}
	bus, _ := events.NewBus(16, nil)
	r, tt, err := startReceiver(t, testConfig(), hosttest.WithBus(bus), next)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		bus.Publish(events.RulesReloaded(time.Now(), 1, 1, nil))
	}
	waitFor(t, "refused records", func() bool { return counterSum(t, tt, "otelcol_receiver_refused_log_records") == 5 })
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := counterSum(t, tt, "otelcol_receiver_refused_log_records"); n != 5 {
		t.Errorf("refused %d, want 5: each event exactly once, no retries", n)
	}
	if n := counterSum(t, tt, "otelcol_receiver_accepted_log_records"); n != 0 {
		t.Errorf("accepted %d", n)
	}
	if calls.Load() > 5 {
		t.Errorf("%d ConsumeLogs calls for 5 events", calls.Load())
	}
}

// TestStuckPipelineDropsHeatmapEvents: while the logs pipeline is stuck,
// the heatmap's subscriber (and so the heatmap) is never held up; what
// does not fit the queue is counted.
func TestStuckPipelineDropsHeatmapEvents(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	entered := make(chan struct{}, 1)
	sink := &consumertest.LogsSink{}
	next, _ := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return sink.ConsumeLogs(ctx, ld)
	})
	bus, _ := events.NewBus(4, nil)
	// No path may go stale during the test (a loaded machine can take
	// seconds): exactly the twelve degradations are produced.
	hm := newTestHeatmap(t, func(c *heatmap.Config) { c.Aggregation.StaleAfter = 1000 })
	cfg := testConfig()
	cfg.QueueSize, cfg.MaxBatch = 1, 1
	r, tt, err := startReceiver(t, cfg, hosttest.With(&hosttest.Provider{Map: hm, Bus: bus}), next)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unblock) // registered after the receiver's Shutdown, so it runs before it
	bus.Publish(events.RulesReloaded(time.Now(), 1, 1, nil))
	<-entered // run is now stuck in ConsumeLogs
	// Twelve paths degrade: one event fits the queue, the rest are dropped.
	now := time.Now()
	for i := range 12 {
		cell := dvoMnl
		cell.DstCity = []string{"Manila", "Cebu", "Baguio", "Iloilo", "Bacolod", "Angeles", "Legazpi", "Quezon City", "Manila", "Cebu", "Baguio", "Iloilo"}[i]
		cell.Carrier = []string{"Globe", "Smart"}[i/8]
		newPath(hm, "dvo-01", cell, now.Add(-51*time.Second)).degrade(now)
	}
	startHeatmap(t, hm)
	waitFor(t, "drops", func() bool { return counterSum(t, tt, "bantay_events_receiver_dropped") >= 11 })
	unblock()
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := counterSum(t, tt, "bantay_events_receiver_dropped"); n != 11 {
		t.Errorf("dropped %d heatmap events, want 11 (12 degradations, 1 queue slot)", n)
	}
	if n := sink.LogRecordCount(); n != 2 {
		t.Errorf("%d records delivered, want the bus event and the one queued heatmap event", n)
	}
}

// plainExtension is an extension that provides nothing the receiver uses.
type plainExtension struct {
	component.StartFunc
	component.ShutdownFunc
}

func TestStartErrors(t *testing.T) {
	sink := &consumertest.LogsSink{}
	for name, tc := range map[string]struct {
		host hosttest.Host
		want string
	}{
		"missing":  {hosttest.Host{}, `extension "bantay" is not configured`},
		"no parts": {hosttest.With(&hosttest.Provider{}), "has neither a heatmap nor an event bus"},
		"foreign":  {hosttest.Host{bantayID: plainExtension{}}, "is a bantayeventsreceiver.plainExtension, not the bantay extension"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := startReceiver(t, testConfig(), tc.host, sink)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A heatmap alone is enough.
	if _, _, err := startReceiver(t, testConfig(), hosttest.With(&hosttest.Provider{Map: newTestHeatmap(t)}), sink); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	load := func(name string) (*Config, error) { return configtest.Load[Config](t, NewFactory(), name) }
	cfg, err := load("")
	if err != nil || *cfg != *createDefaultConfig().(*Config) {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	cfg, err = load("wall")
	want := Config{Extension: component.MustNewIDWithName("bantay", "wall"), FlushInterval: 5 * time.Second, MaxBatch: 500, QueueSize: 5000}
	if err != nil || *cfg != want {
		t.Errorf("wall: %+v, %v", cfg, err)
	}
	_, err = load("bad")
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, field := range []string{"flush_interval:", "max_batch:", "queue_size:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	noExt := createDefaultConfig().(*Config)
	noExt.Extension = component.ID{}
	if err := noExt.Validate(); err == nil || !strings.Contains(err.Error(), "extension:") {
		t.Errorf("no extension: %v", err)
	}
	if err := componenttest.CheckConfigStruct(createDefaultConfig()); err != nil {
		t.Error(err)
	}
}
