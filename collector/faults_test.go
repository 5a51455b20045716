package collector_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/victorialogs"
)

// The faults of docs/RELIABILITY.md, "Faults under load": each a bounded
// test against the real collector binary and real peers, while a
// well-behaved probe sends.

// background runs a well-behaved probe's load on in (one worker, 2 points
// a request, every point its own series, so load.MaxRequests bounds the
// head) until the test calls the returned function, which stops it and
// checks that it was never refused and that everything it had
// acknowledged is stored.
func background(t *testing.T, in *instance, pause time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	load := in.load()
	load.Workers, load.PointsPerRequest, load.MaxRequests, load.Duration, load.Pause = 1, 2, 3000, time.Hour, pause
	done := make(chan otlpload.Result, 1)
	go func() {
		res, err := otlpload.Run(ctx, load)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	return func() {
		t.Helper()
		cancel()
		res := <-done
		for code, n := range res.Refused {
			if code != codes.DeadlineExceeded && code != codes.Canceled {
				t.Errorf("the well-behaved probe was refused %d times with %v", n, code)
			}
		}
		if len(res.Acked) == 0 {
			t.Fatal("the well-behaved probe got nothing acknowledged")
		}
		stored := in.storedTargets(context.Background())
		for _, target := range res.Acked {
			if !stored[target] {
				t.Fatalf("acknowledged point %s of the well-behaved probe is not stored", target)
			}
		}
		t.Logf("well-behaved probe: %d points acknowledged in %d requests, all stored", len(res.Acked), res.Requests)
	}
}

// TestProbeClockTenMinutesOff: a probe whose clock is 10 minutes fast has
// its points refused (timestamp_in_future: beyond max_ahead 5m), counted,
// and its skew shown; one 10 minutes slow is within max_age 25m and is
// stored at the time it claims, not at arrival: never silently mis-timed.
// The second round runs under load.
func TestProbeClockTenMinutesOff(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	in := newInstance(t, "")
	in.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(in.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)
	api := promtest.NewClient("http://" + in.httpAddr)
	points := hostileProbe.Batch([]string{"x"}, time.Now()).DataPointCount()

	skewed := func(round string, offset time.Duration) (time.Time, error) {
		at := time.Now().Add(offset).Truncate(time.Millisecond)
		md := hostileProbe.Batch([]string{"skew-" + round}, at)
		_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
		return at, err
	}
	skew := func() float64 {
		return scrapeCounter(t, in.selfAddr, "bantay_citytag_clock_skew_seconds", "probe")["load-01"]
	}
	var stop func()
	for _, round := range []string{"idle", "loaded"} {
		underLoad := round == "loaded"
		if underLoad {
			stop = background(t, in, 0)
		}
		before := scrapeCounter(t, in.selfAddr, "bantay_citytag_rejected_points", "reason")["timestamp_in_future"]
		_, err := skewed(round+"-fast", 10*time.Minute)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "first: timestamp_in_future ") {
			t.Fatalf("%s: 10 minutes fast: answered %v %q, want INVALID_ARGUMENT naming timestamp_in_future", round, st.Code(), st.Message())
		}
		if after := scrapeCounter(t, in.selfAddr, "bantay_citytag_rejected_points", "reason")["timestamp_in_future"]; after-before != float64(points) {
			t.Errorf("%s: bantay_citytag_rejected_points{reason=timestamp_in_future} rose by %v, want %d", round, after-before, points)
		}
		if s := skew(); !underLoad && math.Abs(s-600) > 60 {
			t.Errorf("clock skew after the fast request %v s, want about +600", s)
		}

		slowAt, err := skewed(round+"-slow", -10*time.Minute)
		if err != nil {
			t.Fatalf("%s: 10 minutes slow: %v, want it stored", round, err)
		}
		if s := skew(); !underLoad && math.Abs(s+600) > 60 {
			t.Errorf("clock skew after the slow request %v s, want about -600", s)
		}
		sel := fmt.Sprintf(`network_latency_milliseconds_count{target="skew-%s-slow"}`, round)
		res, err := api.Query(ctx, "timestamp("+sel+")", slowAt.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		v, err := res.Vector()
		if err != nil || len(v) != 1 || v[0].Value != model.SampleValue(float64(slowAt.UnixMilli())/1000) {
			t.Fatalf("%s: the slow probe's point, queried just after its time: %v %v, want one sample at %v", round, v, err, slowAt)
		}
		// Ten minutes is beyond the 5m lookback: at arrival time it is absent,
		// which is where a mis-timed point would show.
		if res, err := api.Query(ctx, sel, time.Time{}); err != nil || res.Len() != 0 {
			t.Fatalf("%s: the slow probe's point is visible now (%v, %v): stored at arrival, not at its time", round, res.Value, err)
		}
	}
	stop()
}

// lokiAMConfig is a collector with rules alerting to an Alertmanager and
// events to a Loki-protocol receiver, with a sending queue of 2 events.
const lokiAMConfig = `
extensions:
  bantay:
    endpoint: %[1]s
    storage: {path: %[2]s}
    prometheus_config: %[3]s
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %[4]s}
      http: {endpoint: %[8]s}
  # One event per request, spaced as they happen: batched (flush_interval
  # 2s), the start's event and the test's two reloads reached the 2-event
  # queue in one batch of 3, of which it took 2, so the test's second
  # reload was dropped before the outage. The queue taking what fits of a
  # batch is proven at the exporter (TestVictoriaLogsDownABatchQueuesWhatFits).
  bantay_events: {flush_interval: 100ms, max_batch: 1}
processors:
  citytag:
    probes:
      load-01:
        city: Manila
        uplinks: [{carrier: Globe, network_type: 5g}]
    limits: {max_series_per_probe: 0}
  delta_to_cumulative: {}
exporters:
  tsdb: {}
  loki:
    endpoint: %[5]s
    sending_queue: {queue_size: 2, num_consumers: 1, batch: {min_size: 1, max_size: 1}}
    retry_on_failure: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m}
service:
  extensions: [bantay]
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [citytag, delta_to_cumulative]
      exporters: [tsdb]
    logs/events:
      receivers: [bantay_events]
      exporters: [loki]
  telemetry:
    logs: {level: warn}
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: %[6]s, port: %[7]s}}}
`

// TestAlertmanagerAndLokiDownAndBack stops Alertmanager and the Loki
// (VictoriaLogs) while the collector is under load and has alerts and
// events to send: the alert that fired during the outage is counted as
// dropped and reaches Alertmanager after it is back (the rule manager
// resends firing alerts every minute); the events beyond the exporter's
// queue are dropped and counted, every other one reaches Loki once it is
// back, and no point is lost or refused meanwhile.
func TestAlertmanagerAndLokiDownAndBack(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary, Alertmanager and VictoriaLogs")
	am := promtest.StartAlertmanager(t)
	vl := victorialogs.Start(t)
	in := newInstance(t, "")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(rules, `groups:
  - name: faults
    rules:
      - alert: BantayFaultTest
        expr: count(network_latency_milliseconds_count{target="during-outage"}) > 0
`)
	prom := filepath.Join(dir, "prometheus.yml")
	write(prom, fmt.Sprintf("global: {evaluation_interval: 1s}\nrule_files: [%s]\nalerting:\n  alertmanagers: [{static_configs: [{targets: [%q]}]}]\n", rules, am.Addr))
	selfHost, selfPort, _ := strings.Cut(in.selfAddr, ":")
	write(in.config, fmt.Sprintf(lokiAMConfig, in.httpAddr, filepath.Join(dir, "data"), prom, in.grpcAddr, vl.PushURL(), selfHost, selfPort, in.otlpHTTP))
	cmd := in.start()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stopLoad := background(t, in, 50*time.Millisecond)

	bantayMetric := func(name string, labels ...string) map[string]float64 {
		return scrapeCounter(t, in.httpAddr, name, labels...)
	}
	reload := func() {
		before := bantayMetric("bantay_config_reloads", "result")["success"]
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for bantayMetric("bantay_config_reloads", "result")["success"] == before {
			if ctx.Err() != nil {
				t.Fatalf("rules not reloaded after SIGHUP:\n%s", in.logs[0])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Only the test's own reloads count: the start's event may or may not
	// have found the events receiver subscribed.
	since := time.Now()
	reloadedEvents := func() int {
		qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := vl.Flush(qctx); err != nil {
			t.Fatal(err)
		}
		rows, err := vl.Query(qctx, `_stream:{kind="rules_reloaded"}`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range rows {
			if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["_time"])); err == nil && !at.Before(since) {
				n++
			}
		}
		return n
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not within the test's bound\ncollector log:\n%s\nVictoriaLogs log:\n%s", what, in.logs[0], vl.Logs())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Two reloads prove the path (the start's own event may be there too).
	reload()
	reload()
	waitUntil("the first events in Loki", func() bool { return reloadedEvents() >= 2 })
	base := reloadedEvents()

	am.Stop(t)
	vl.Stop(t)
	outageAt := time.Now()
	const duringOutage = 8
	for range duringOutage {
		reload()
	}
	md := hostileProbe.Batch([]string{"during-outage"}, time.Now())
	if a, err := otlpload.PostHTTP(ctx, http.DefaultClient, "http://"+in.otlpHTTP, md); err != nil || a.Status != 200 {
		t.Fatalf("the point that fires the alert: %v %v", a, err)
	}
	waitUntil("the alert's failed notification counted as dropped", func() bool {
		return bantayMetric("prometheus_notifications_dropped")[""] > 0
	})
	// Events, not refused offers: a batch that did not fit whole was
	// counted in otelcol_exporter_enqueue_failed_log_records before what
	// fitted of it was queued.
	dropped := scrapeCounter(t, in.selfAddr, "bantay_loki_queue_full_events", "exporter")["loki"]
	t.Logf("during the outage: %d events published, %v dropped at the full queue", duringOutage, dropped)
	if dropped != duringOutage-2 {
		t.Errorf("bantay_loki_queue_full_events{exporter=loki} = %v: want the %d of the %d events beyond the 2-event queue", dropped, duringOutage-2, duringOutage)
	}

	vl.Restart(t)
	am.Restart(t)
	backAt := time.Now()
	alert, err := am.Webhook.WaitFor(ctx, func(a promtest.WebhookAlert) bool {
		return a.Labels["alertname"] == "BantayFaultTest" && a.Status == "firing"
	})
	if err != nil {
		t.Fatalf("the alert that fired during the outage never reached Alertmanager: %v", err)
	}
	t.Logf("alert fired during the outage (at %v) delivered %v after Alertmanager came back", alert.StartsAt.Sub(outageAt).Round(time.Second), time.Since(backAt).Round(time.Second))
	want := base + duringOutage - int(dropped)
	waitUntil("the queued events in Loki", func() bool { return reloadedEvents() >= want })
	if got := reloadedEvents(); got != want {
		t.Errorf("rules_reloaded events in Loki: %d, want %d (%d before, %d during the outage, %v dropped)", got, want, base, duringOutage, dropped)
	}
	t.Logf("events: %d delivered after Loki came back, %v dropped and counted", want-base, dropped)
	stopLoad()
}
