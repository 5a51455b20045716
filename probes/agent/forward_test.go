package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/queue"
)

// startOTLP runs the collector's own OTLP receiver (gRPC and HTTP) into a
// sink, as the collector's pipeline receives a probe.
func startOTLP(t *testing.T, grpcAddr, httpAddr string) *consumertest.MetricsSink {
	t.Helper()
	sink := &consumertest.MetricsSink{}
	startOTLPInto(t, grpcAddr, httpAddr, sink)
	return sink
}

func startOTLPInto(t *testing.T, grpcAddr, httpAddr string, next consumer.Metrics) {
	t.Helper()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	if err := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{
		"grpc": map[string]any{"endpoint": grpcAddr},
		"http": map[string]any{"endpoint": httpAddr},
	}}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	rcv, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Shutdown(context.Background()) })
}

// requestTime is when a received request's points were measured (one
// export's points share their collection time); false if it has none.
func requestTime(md pmetric.Metrics) (time.Time, bool) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if m := ms.At(k); m.Type() == pmetric.MetricTypeSum && m.Sum().DataPoints().Len() > 0 {
					return m.Sum().DataPoints().At(0).Timestamp().AsTime(), true
				}
			}
		}
	}
	return time.Time{}, false
}

func hasMetric(md pmetric.Metrics, name string) bool {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if ms.At(k).Name() == name {
					return true
				}
			}
		}
	}
	return false
}

// scrape reads the probe's /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// gauge is the value of a metric family's only series, -1 if absent.
// counterSum sums a counter family over its label sets (0 when absent).
func counterSum(mf map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, m := range mf[name].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func gauge(mf map[string]*dto.MetricFamily, name string) float64 {
	f := mf[name]
	if f == nil || len(f.Metric) == 0 {
		return -1
	}
	return f.Metric[0].GetGauge().GetValue()
}

func (l *logRecorder) find(prefix string) (logLine, bool) {
	for _, m := range l.lines() {
		if strings.HasPrefix(m.msg, prefix) {
			return m, true
		}
	}
	return logLine{}, false
}

// TestStoreAndForward: a probe whose collector is down queues its exports
// on disk, is restarted during the outage (exiting cleanly, saying what
// stays queued), queues more, and when the collector comes back delivers
// every request measured during the outage exactly once, each with its own
// timestamp, oldest first, no more than replay_per_export after each
// fresh export; /metrics shows the queue all along, and the same metrics
// reach the collector.
func TestStoreAndForward(t *testing.T) {
	for _, protocol := range []string{config.ProtocolGRPC, config.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) { testStoreAndForward(t, protocol) })
	}
}

func testStoreAndForward(t *testing.T, protocol string) {
	grpcAddr, httpAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := testConfig(t, grpcAddr, startReflector(t), testenv.FreeAddr(t))
	if protocol == config.ProtocolHTTP {
		cfg.Collector.Protocol, cfg.Collector.Endpoint = protocol, "http://"+httpAddr
	}
	cfg.Uplinks = cfg.Uplinks[:1]
	cfg.Collector.Timeout = 300 * time.Millisecond
	cfg.Queue = config.Queue{Dir: t.TempDir(), ReplayPerExport: 2}
	cfg.Metrics.Listen = metricsAddr
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	queued := func() float64 { return gauge(scrape(t, metricsAddr), "bantay_probe_queue_requests") }

	// First run: the collector is down; stopped with exports queued.
	logsA := &logRecorder{}
	stopA := runAgent(t, cfg, slog.New(logsA))
	waitFor(t, "5 queued requests", 30*time.Second, func() bool { return queued() >= 5 })
	mf := scrape(t, metricsAddr)
	for _, name := range []string{"bantay_probe_queue_points", "bantay_probe_queue_size_bytes", "bantay_probe_queue_oldest_age_seconds", "bantay_probe_export_last_success_seconds"} {
		if gauge(mf, name) < 0 {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for _, name := range []string{"bantay_probe_queue_dropped_total", "bantay_probe_export_failures_total", "bantay_probe_queue_replayed_total"} {
		if mf[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if err := stopA(); err != nil {
		t.Fatalf("a probe stopped with everything queued must stop cleanly: %v", err)
	}
	var stayed logLine
	for _, l := range logsA.lines() {
		if strings.Contains(l.msg, "stay queued on disk; they are sent on next start") {
			stayed = l
		}
	}
	if stayed.msg == "" {
		t.Fatalf("no log line saying what stays queued: %v", logsA.lines())
	}
	fromA, _ := stayed.attrs["queued_requests"].(int64)
	if fromA < 5 {
		t.Fatalf("stop reports %d requests queued, want at least 5: %v", fromA, stayed)
	}

	// Second run, still down: it finds A's queue, and queues more.
	logsB := &logRecorder{}
	stopB := runAgent(t, cfg, slog.New(logsB))
	waitFor(t, "the restart to say what an earlier run queued", 10*time.Second, func() bool {
		_, ok := logsB.find(fmt.Sprintf("%d requests (", fromA))
		return ok
	})
	waitFor(t, "3 more queued requests", 30*time.Second, func() bool { return queued() >= float64(fromA+3) })

	failuresBeforeUp := counterSum(scrape(t, metricsAddr), "bantay_probe_export_failures_total")
	upAt := time.Now()
	sink := startOTLP(t, grpcAddr, httpAddr)
	waitFor(t, "the recovery line", 30*time.Second, func() bool { return logsB.count("delivered again after ") > 0 })
	waitFor(t, "the queue to drain", 60*time.Second, func() bool { return queued() == 0 })
	waitFor(t, "the backlog line", 10*time.Second, func() bool { return logsB.count("queued backlog delivered") > 0 })
	failedAfterUp := counterSum(scrape(t, metricsAddr), "bantay_probe_export_failures_total") - failuresBeforeUp
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	recovery, _ := logsB.find("delivered again after ")
	fromB, _ := recovery.attrs["queued_requests"].(int64)
	if dropped, _ := recovery.attrs["dropped_requests"].(uint64); fromB < 3 || dropped != 0 {
		t.Fatalf("recovery line %q %v: want at least 3 queued and none dropped", recovery.msg, recovery.attrs)
	}

	// Fresh exports arrive newest so far; a replay is older than what came
	// before it. Every queued request (from both runs, including any queued
	// while the collector was coming up) arrives once, oldest first, in
	// runs of at most replay_per_export between fresh exports.
	all := sink.AllMetrics()
	var replays []time.Time
	var newest time.Time
	run, maxRun := 0, 0
	sawQueueMetrics := false
	for _, md := range all {
		sawQueueMetrics = sawQueueMetrics || hasMetric(md, MetricQueueRequests)
		ts, ok := requestTime(md)
		switch {
		case !ok:
		case ts.Before(newest):
			replays = append(replays, ts)
			run++
			maxRun = max(maxRun, run)
		default:
			newest, run = ts, 0
		}
	}
	t.Logf("%d requests queued before the restart, %d after; %d delivered after the outage, %d of them replays, longest run of replays %d", fromA, fromB, len(all), len(replays), maxRun)
	// Under load an export after the recovery may time out and be queued
	// too: the probe's own count of replays is the exact figure.
	var replayed int64
	for _, l := range logsB.lines() {
		if l.msg == "queued backlog delivered" {
			replayed = max(replayed, l.attrs["replayed_total"].(int64))
		}
	}
	// Delivery is at least once, as OTLP's is: a replay the sink received
	// but whose answer came after the export timeout stays queued and is
	// sent again (the store keeps one copy of an identical sample). So a
	// request may arrive twice only when an export failed after recovery.
	distinct := slices.Compact(slices.Clone(replays))
	if len(distinct) != int(replayed) || replayed < fromA+fromB {
		t.Errorf("%d distinct queued requests arrived; the probe replayed %d, and %d were queued during the outage (%d before the restart, %d after)", len(distinct), replayed, fromA+fromB, fromA, fromB)
	}
	if !slices.IsSortedFunc(replays, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Errorf("queued requests arrived out of order: %v", replays)
	}
	if dup := len(replays) - len(distinct); float64(dup) > failedAfterUp {
		t.Errorf("%d queued requests arrived twice, but only %v exports failed after the collector came up: %v", dup, failedAfterUp, replays)
	}
	if maxRun > cfg.Queue.ReplayPerExport {
		t.Errorf("%d queued requests arrived in a row, want at most replay_per_export (%d) between fresh exports", maxRun, cfg.Queue.ReplayPerExport)
	}
	if replays[0].After(upAt) {
		t.Errorf("the oldest replay was measured at %s, after the collector came up at %s", replays[0], upAt)
	}
	if !sawQueueMetrics {
		t.Errorf("the collector never received %s", MetricQueueRequests)
	}
}

// counter is the value of a metric family's series with label=value.
func counter(mf map[string]*dto.MetricFamily, name, label, value string) float64 {
	f := mf[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// TestDropsCountedAndReported: requests older than queue.max_age are
// dropped (never sent for the store to refuse), counted by cause on
// /metrics, and the recovery line says how many were dropped.
func TestDropsCountedAndReported(t *testing.T) {
	grpcAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := testConfig(t, grpcAddr, startReflector(t), testenv.FreeAddr(t))
	cfg.Uplinks = cfg.Uplinks[:1]
	cfg.Collector.Timeout = 200 * time.Millisecond
	// Any request is too old by the time the next one is queued.
	cfg.Queue = config.Queue{Dir: t.TempDir(), MaxAge: time.Nanosecond}
	cfg.Metrics.Listen = metricsAddr
	logs := &logRecorder{}
	stop := runAgent(t, cfg, slog.New(logs))
	waitFor(t, "2 requests dropped for age", 30*time.Second, func() bool {
		return counter(scrape(t, metricsAddr), "bantay_probe_queue_dropped_total", "cause", "age") >= 2
	})
	mf := scrape(t, metricsAddr)
	if n := counter(mf, "bantay_probe_export_failures_total", "cause", "unreachable"); n < 2 {
		t.Errorf("export failures{cause=unreachable} = %v, want at least 2", n)
	}
	if n := counter(mf, "bantay_probe_queue_dropped_total", "cause", "size"); n != 0 {
		t.Errorf("dropped{cause=size} = %v, want 0", n)
	}
	startOTLP(t, grpcAddr, testenv.FreeAddr(t))
	waitFor(t, "the recovery line", 30*time.Second, func() bool { return logs.count("delivered again after ") > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	l, _ := logs.find("delivered again after ")
	byCause, _ := l.attrs["dropped_by_cause"].(map[queue.Cause]uint64)
	if n, _ := l.attrs["dropped_requests"].(uint64); n < 2 || byCause[queue.CauseAge] < 2 || !strings.Contains(l.msg, " dropped;") {
		t.Errorf("recovery line %q %v: want the drops for age reported", l.msg, l.attrs)
	}
}

// TestUnreadableQueuedRequestIsDropped: a queued request the collector can
// never take (here: not an OTLP request at all) is dropped and counted as
// refused, and the requests queued behind it are still delivered.
func TestUnreadableQueuedRequestIsDropped(t *testing.T) {
	for _, protocol := range []string{config.ProtocolGRPC, config.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			grpcAddr, httpAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
			cfg := testConfig(t, grpcAddr, startReflector(t), testenv.FreeAddr(t))
			if protocol == config.ProtocolHTTP {
				cfg.Collector.Protocol, cfg.Collector.Endpoint = protocol, "http://"+httpAddr
			}
			cfg.Uplinks = cfg.Uplinks[:1]
			cfg.Queue = config.Queue{Dir: t.TempDir()}
			cfg.Metrics.Listen = metricsAddr
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}

			good := pmetric.NewMetrics()
			g := good.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
			g.SetName("queued.behind.garbage")
			g.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(7)
			body, err := pmetricotlp.NewExportRequestFromMetrics(good).MarshalProto()
			if err != nil {
				t.Fatal(err)
			}
			q, err := queue.Open(filepath.Join(cfg.Queue.Dir, cfg.Uplinks[0].Name+".db"), queue.Options{MaxBytes: int64(cfg.Queue.MaxSize), MaxAge: cfg.Queue.MaxAge})
			if err != nil {
				t.Fatal(err)
			}
			q.Append(time.Now(), 1, []byte("\xff\xff not protobuf"))
			q.Append(time.Now(), 1, body)
			q.Close()

			sink := startOTLP(t, grpcAddr, httpAddr)
			logs := &logRecorder{}
			stop := runAgent(t, cfg, slog.New(logs))
			waitFor(t, "the queue to drain", 30*time.Second, func() bool {
				return gauge(scrape(t, metricsAddr), "bantay_probe_queue_requests") == 0
			})
			mf := scrape(t, metricsAddr)
			if err := stop(); err != nil {
				t.Errorf("Run: %v; a dropped queued request is no outage", err)
			}
			if logs.count("queued request refused by the collector and dropped: ") != 1 {
				t.Errorf("the drop was not logged once: %v", logs.lines())
			}
			if n := counter(mf, "bantay_probe_export_failures_total", "cause", "refused"); n != 1 {
				t.Errorf("export failures{cause=refused} = %v, want 1", n)
			}
			if n := counter(mf, "bantay_probe_queue_dropped_total", "cause", "refused"); n != 1 {
				t.Errorf("dropped{cause=refused} = %v, want 1", n)
			}
			delivered := false
			for _, md := range sink.AllMetrics() {
				delivered = delivered || hasMetric(md, "queued.behind.garbage")
			}
			if !delivered {
				t.Error("the request queued behind the unreadable one was not delivered")
			}
		})
	}
}

// TestOverloadRefusalsAreQueued: a collector that answers but refuses with
// the store's retryable overload refusal (RESOURCE_EXHAUSTED with a
// RetryInfo; HTTP 429 with Retry-After) for longer than the exporter's
// retries is treated like an unreachable one: the exports are queued, and
// delivered once it takes data again.
func TestOverloadRefusalsAreQueued(t *testing.T) {
	for _, protocol := range []string{config.ProtocolGRPC, config.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			grpcAddr, httpAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
			cfg := testConfig(t, grpcAddr, startReflector(t), testenv.FreeAddr(t))
			if protocol == config.ProtocolHTTP {
				cfg.Collector.Protocol, cfg.Collector.Endpoint = protocol, "http://"+httpAddr
			}
			cfg.Uplinks = cfg.Uplinks[:1]
			cfg.Collector.Timeout = 300 * time.Millisecond
			cfg.Queue = config.Queue{Dir: t.TempDir()}
			cfg.Metrics.Listen = metricsAddr

			var overloaded atomic.Bool
			overloaded.Store(true)
			sink := &consumertest.MetricsSink{}
			exhausted, err := status.New(codes.ResourceExhausted, "store overloaded").
				WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(50 * time.Millisecond)})
			if err != nil {
				t.Fatal(err)
			}
			store, _ := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
				if overloaded.Load() {
					return exhausted.Err()
				}
				return sink.ConsumeMetrics(ctx, md)
			})
			startOTLPInto(t, grpcAddr, httpAddr, store)

			logs := &logRecorder{}
			stop := runAgent(t, cfg, slog.New(logs))
			waitFor(t, "3 queued requests", 30*time.Second, func() bool {
				return gauge(scrape(t, metricsAddr), "bantay_probe_queue_requests") >= 3
			})
			overloaded.Store(false)
			waitFor(t, "the queue to drain", 30*time.Second, func() bool {
				return gauge(scrape(t, metricsAddr), "bantay_probe_queue_requests") == 0
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if logs.count("collector unreachable; measuring continues, exports are queued on disk") != 1 || logs.count("export refused") != 0 {
				t.Errorf("an overload refusal must be logged as an outage, once: %v", logs.lines())
			}
			var newest time.Time
			replays := 0
			for _, md := range sink.AllMetrics() {
				if ts, ok := requestTime(md); ok && ts.Before(newest) {
					replays++
				} else if ok {
					newest = ts
				}
			}
			if replays < 3 {
				t.Errorf("%d queued requests delivered, want at least the 3 queued while overloaded", replays)
			}
		})
	}
}

// TestStopDuringOutageWithTwoUplinks: a probe with two uplinks stopped
// while the collector is down queues the final export of each and stops
// cleanly. Each final export waits up to collector.timeout for the
// collector; the uplinks used to share one such budget in turn, so the
// second ran out of time and the stop failed ("shut down meter: context
// deadline exceeded").
func TestStopDuringOutageWithTwoUplinks(t *testing.T) {
	cfg := testConfig(t, testenv.FreeAddr(t), startReflector(t), testenv.FreeAddr(t))
	cfg.Collector.Timeout = 1500 * time.Millisecond // two in turn exceed timeout + 1s
	cfg.Queue = config.Queue{Dir: t.TempDir()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	stop := runAgent(t, cfg, slog.New(logs))
	waitFor(t, "both uplinks' outage warnings", 30*time.Second, func() bool {
		n := 0
		for _, l := range logs.lines() {
			if strings.HasPrefix(l.msg, "collector unreachable") {
				n++
			}
		}
		return n == 2
	})
	if err := stop(); err != nil {
		t.Fatalf("a probe stopped with everything queued must stop cleanly: %v", err)
	}
	for _, u := range cfg.Uplinks {
		q, err := queue.Open(filepath.Join(cfg.Queue.Dir, u.Name+".db"), queue.Options{MaxBytes: int64(cfg.Queue.MaxSize), MaxAge: cfg.Queue.MaxAge})
		if err != nil {
			t.Fatal(err)
		}
		if s := q.Stats(); s.Requests == 0 {
			t.Errorf("uplink %s queued nothing", u.Name)
		}
		_ = q.Close()
	}
}
