package failureeventsconnector

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/configtest"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// waitFor polls cond for up to 10 s: the connector hands events on from
// its own goroutine. The bound only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counterValue(t *testing.T, tt *componenttest.Telemetry, name, attr, value string) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T", name, m.Data)
	}
	var n int64
	for _, dp := range sum.DataPoints {
		if attr != "" {
			if v, ok := dp.Attributes.Value(attribute.Key(attr)); !ok || v.AsString() != value {
				continue
			}
		}
		n += dp.Value
	}
	return n
}

func startConnector(t *testing.T, cfg *Config, next consumer.Logs) (connector.Metrics, *componenttest.Telemetry) {
	t.Helper()
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	set := connectortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tt.NewTelemetrySettings()
	c, err := NewFactory().CreateMetricsToLogs(context.Background(), set, cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded, so that a failed test cannot hang in its cleanup.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Shutdown(ctx)
	})
	return c, tt
}

// burstMetrics is a probe's failure counter over a burst of 3 timeouts
// followed by two quiet points, one pmetric.Metrics per export.
func burstMetrics() []pmetric.Metrics {
	var out []pmetric.Metrics
	for i, v := range []float64{10, 11, 13, 13, 13} {
		md := pmetric.NewMetrics()
		appendFailures(md, dvoTimeout, t0.Add(time.Duration(i)*15*time.Second), v)
		out = append(out, md)
	}
	return out
}

func TestConnectorEmitsBurstAsLogRecord(t *testing.T) {
	sink := &consumertest.LogsSink{}
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = 10 * time.Millisecond
	c, tt := startConnector(t, cfg, sink)
	if c.Capabilities().MutatesData {
		t.Error("connector claims to mutate data: the fan-out would copy every batch for nothing")
	}
	for _, md := range burstMetrics() {
		if err := c.ConsumeMetrics(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the burst's log record", func() bool { return sink.LogRecordCount() == 1 })
	lr := sink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	attrs := lr.Attributes().AsRaw()
	for k, want := range map[string]any{
		"service": "bantay", "event.kind": "probe_failure", "src_city": "Davao", "carrier": "Globe",
		"island_group": "Mindanao", "probe": "dvo-01", "dst_city": "Manila", "network_type": "5g",
		"target": "203.0.113.7:443", "reason": "timeout", "count": int64(3), "method": "tcp",
		"first_time": "2026-11-25T02:00:15Z", "last_time": "2026-11-25T02:00:30Z",
	} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %#v, want %#v", k, attrs[k], want)
		}
	}
	if !lr.Timestamp().AsTime().Equal(t0.Add(15*time.Second)) || lr.SeverityNumber() != plog.SeverityNumberWarn {
		t.Errorf("timestamp %v severity %v", lr.Timestamp().AsTime(), lr.SeverityNumber())
	}
	if n := counterValue(t, tt, "bantay_failure_events_emitted", "", ""); n != 1 {
		t.Errorf("emitted %d", n)
	}
	if n := counterValue(t, tt, "bantay_failure_events_points", "result", resAccepted); n != 4 {
		t.Errorf("accepted points %d, want 4 (the first one is the baseline)", n)
	}
}

// blockingConsumer holds ConsumeLogs until released, like a logs pipeline
// that is stuck.
type blockingConsumer struct {
	entered chan struct{}
	release chan struct{}
	sink    consumertest.LogsSink
}

func (b *blockingConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (b *blockingConsumer) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.sink.ConsumeLogs(ctx, ld)
}

func TestStuckLogsPipelineNeverBlocksMetrics(t *testing.T) {
	next := &blockingConsumer{entered: make(chan struct{}, 1), release: make(chan struct{})}
	cfg := createDefaultConfig().(*Config)
	cfg.QueueSize, cfg.MaxBatch = 2, 1
	cfg.FlushInterval = 10 * time.Millisecond
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(next.release) }) }
	c, tt := startConnector(t, cfg, next)
	t.Cleanup(unblock) // registered after the connector's Shutdown, so it runs before it

	// Ten probes, one burst each: the first event is taken by the stuck
	// consumer, two wait in the queue, seven are dropped.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range 10 {
			s := dvoTimeout
			s.probe = "dvo-0" + string(rune('0'+p))
			s.start = t0
			for i, v := range []float64{1, 1, 1} {
				md := pmetric.NewMetrics()
				appendFailures(md, s, t0.Add(time.Duration(i)*15*time.Second), v)
				if err := c.ConsumeMetrics(context.Background(), md); err != nil {
					t.Error(err)
				}
			}
			if p == 0 {
				<-next.entered
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ConsumeMetrics blocked behind a stuck logs pipeline")
	}
	if n := counterValue(t, tt, "bantay_failure_events_dropped", "reason", dropQueueFull); n != 7 {
		t.Errorf("dropped{queue_full} = %d, want 7", n)
	}
	unblock()
	waitFor(t, "the queued events", func() bool { return next.sink.LogRecordCount() == 3 })
}

func TestConsumerErrorIsCountedNotRetried(t *testing.T) {
	var calls atomic.Int64
	next, err := consumer.NewLogs(func(context.Context, plog.Logs) error {
		calls.Add(1)
		return errors.New("sending queue is full")
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = 10 * time.Millisecond
	c, tt := startConnector(t, cfg, next)
	for _, md := range burstMetrics() {
		_ = c.ConsumeMetrics(context.Background(), md)
	}
	waitFor(t, "the refused event to be counted", func() bool {
		return counterValue(t, tt, "bantay_failure_events_dropped", "reason", dropConsumerError) == 1
	})
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("next consumer called %d times for one event: refused batches must not be retried", n)
	}
}

func TestShutdownEmitsOpenBursts(t *testing.T) {
	sink := &consumertest.LogsSink{}
	c, _ := startConnector(t, createDefaultConfig().(*Config), sink)
	for _, md := range burstMetrics()[:3] { // burst still open
		_ = c.ConsumeMetrics(context.Background(), md)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.LogRecordCount() != 1 {
		t.Fatalf("%d records after shutdown, want the open burst", sink.LogRecordCount())
	}
	// After shutdown points are ignored, and a second shutdown is harmless.
	_ = c.ConsumeMetrics(context.Background(), burstMetrics()[4])
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownHandsOnBatchedEvents: a burst that closed and was taken from
// the queue into the batch still waiting for flush_interval is handed on
// at shutdown, not lost with the goroutine that held it.
func TestShutdownHandsOnBatchedEvents(t *testing.T) {
	sink := &consumertest.LogsSink{}
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = time.Minute // never flushes during the test
	c, tt := startConnector(t, cfg, sink)
	for _, md := range burstMetrics() { // the burst closes
		if err := c.ConsumeMetrics(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
	fe := c.(*failureEvents)
	waitFor(t, "the batching goroutine to take the event", func() bool { return len(fe.queue) == 0 })
	if n := sink.LogRecordCount(); n != 0 {
		t.Fatalf("%d records before the flush interval", n)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.LogRecordCount(); n != 1 {
		t.Errorf("%d records after shutdown, want the batched burst", n)
	}
	if n := counterValue(t, tt, "bantay_failure_events_emitted", "", ""); n != 1 {
		t.Errorf("emitted %d, want 1", n)
	}
}

func TestLoadConfig(t *testing.T) {
	load := func(name string) (*Config, error) { return configtest.Load[Config](t, NewFactory(), name) }
	cfg, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if *cfg != *createDefaultConfig().(*Config) {
		t.Errorf("empty section changed the defaults: %+v", cfg)
	}
	cfg, err = load("slow")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{ProbeInterval: time.Minute, QuietIntervals: 3, MaxBurst: 15 * time.Minute, MaxStreams: 1000,
		Expire: 2 * time.Hour, QueueSize: 500, FlushInterval: 2 * time.Second, MaxBatch: 50}
	if *cfg != want {
		t.Errorf("got %+v\nwant %+v", *cfg, want)
	}
	_, err = load("bad")
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, field := range []string{"probe_interval", "quiet_intervals", "max_burst", "max_streams", "expire",
		"queue_size", "flush_interval", "max_batch"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if err := componenttest.CheckConfigStruct(createDefaultConfig()); err != nil {
		t.Error(err)
	}
}
