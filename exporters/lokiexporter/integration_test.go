package lokiexporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/victorialogs"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// These tests push to VictoriaLogs, an independently written receiver of
// Loki's push protocol, with the exporter's production code path: the
// factory, exporterhelper's queue and retry, and a real HTTP connection.

type demoEvent struct {
	kind, msg string
	attrs     map[string]any
	trace     bool
}

// demoScenario is what the NOC sees when Davao → Manila on Globe goes bad:
// the path degrades, a probe times out, another probe goes stale, the path
// recovers.
var demoScenario = []demoEvent{
	{"path_degraded", "Davao → Manila on Globe 5g degraded: p95 21.5 → 187 ms, loss 4%", map[string]any{
		"src_city": "Davao", "island_group": "Mindanao", "carrier": "Globe", "probe": "dvo-01",
		"dst_city": "Manila", "network_type": "5g", "p95_before_ms": 21.5, "p95_after_ms": 187.0, "loss_ratio": 0.04,
	}, false},
	{"probe_failure", "dvo-01: 5 timeouts to 203.0.113.7:443", map[string]any{
		"src_city": "Davao", "island_group": "Mindanao", "carrier": "Globe", "probe": "dvo-01",
		"dst_city": "Manila", "network_type": "5g", "target": "203.0.113.7:443", "reason": "timeout",
		"error": "dial tcp 203.0.113.7:443: i/o timeout", "count": int64(5),
	}, true},
	{"path_stale", "Baguio → Manila on Smart fiber stale: no samples for 90 s", map[string]any{
		"src_city": "Baguio", "island_group": "Luzon", "carrier": "Smart", "probe": "bgo-01",
		"dst_city": "Manila", "network_type": "fiber",
	}, false},
	{"path_recovered", "Davao → Manila on Globe 5g recovered: p95 187 → 23 ms", map[string]any{
		"src_city": "Davao", "island_group": "Mindanao", "carrier": "Globe", "probe": "dvo-01",
		"dst_city": "Manila", "network_type": "5g", "p95_before_ms": 187.0, "p95_after_ms": 23.0, "loss_ratio": 0.0,
	}, false},
}

func putAll(m pcommon.Map, attrs map[string]any) {
	for k, v := range attrs {
		switch v := v.(type) {
		case string:
			m.PutStr(k, v)
		case float64:
			m.PutDouble(k, v)
		case int64:
			m.PutInt(k, v)
		}
	}
}

// asMetadata is how the exporter renders an attribute value as structured
// metadata (pcommon's AsString).
func asMetadata(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	default:
		return fmt.Sprint(v)
	}
}

func startVLExporter(t *testing.T, cfg *Config) (exporter.Logs, func() int64) {
	t.Helper()
	exp, tt := startExporter(t, cfg)
	return exp, func() int64 { return counter(t, tt, "otelcol_exporter_enqueue_failed_log_records") }
}

func TestVictoriaLogsDemoScenario(t *testing.T) {
	vl := victorialogs.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Endpoint = vl.PushURL() // ends in /push: used as it is
	cfg.TenantID = "7"          // VictoriaLogs maps a numeric X-Scope-OrgID to AccountID
	// Keep the line as Loki stores it, so that labels, structured metadata
	// and the JSON line can each be checked on their own.
	cfg.Headers.Set("VL-Loki-Disable-Message-Parsing", "true")
	exp, _ := startVLExporter(t, cfg)

	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	// Handed over newest first: the store must still return them in time order.
	for i := len(demoScenario) - 1; i >= 0; i-- {
		ev := demoScenario[i]
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i) * time.Second)))
		lr.Body().SetStr(ev.msg)
		lr.Attributes().PutStr("service", "bantay")
		lr.Attributes().PutStr("event.kind", ev.kind)
		putAll(lr.Attributes(), ev.attrs)
		if ev.trace {
			lr.SetTraceID(pcommon.TraceID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
			lr.SetSpanID(pcommon.SpanID{0xca, 0xfe, 1, 2, 3, 4, 5, 6})
		}
	}
	if err := exp.ConsumeLogs(ctx, ld); err != nil {
		t.Fatal(err)
	}
	// Shutdown drains the queue: everything is pushed when it returns.
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	rows, err := vl.QueryTenant(ctx, "7", `* | sort by (_time)`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(demoScenario) {
		t.Fatalf("got %d entries, want %d: %v\nVictoriaLogs log:\n%s", len(rows), len(demoScenario), rows, vl.Logs())
	}
	for i, ev := range demoScenario {
		row := rows[i]
		str := func(k string) string { s, _ := row[k].(string); return s }

		wantTime := base.Add(time.Duration(i) * time.Second)
		if ts, err := time.Parse(time.RFC3339Nano, str("_time")); err != nil || !ts.Equal(wantTime) {
			t.Errorf("entry %d: _time %q, want %s (order or timestamp lost)", i, str("_time"), wantTime.Format(time.RFC3339Nano))
		}
		// Labels: exactly the allow-list, nothing high-cardinality.
		wantStream := fmt.Sprintf(`{carrier="%s",island_group="%s",kind="%s",service="bantay",src_city="%s"}`,
			ev.attrs["carrier"], ev.attrs["island_group"], ev.kind, ev.attrs["src_city"])
		if str("_stream") != wantStream {
			t.Errorf("entry %d: _stream %s, want %s", i, str("_stream"), wantStream)
		}
		for label, want := range map[string]string{
			"service": "bantay", "kind": ev.kind, "src_city": ev.attrs["src_city"].(string),
			"carrier": ev.attrs["carrier"].(string), "island_group": ev.attrs["island_group"].(string),
		} {
			if str(label) != want {
				t.Errorf("entry %d: label %s = %q, want %q", i, label, str(label), want)
			}
		}
		// Structured metadata: every other attribute.
		for k, v := range ev.attrs {
			switch k {
			case "src_city", "carrier", "island_group":
				continue
			}
			if str(k) != asMetadata(v) {
				t.Errorf("entry %d: metadata %s = %q, want %q", i, k, str(k), asMetadata(v))
			}
		}
		if ev.trace {
			if str("trace_id") != "deadbeef0102030405060708090a0b0c" || str("span_id") != "cafe010203040506" {
				t.Errorf("entry %d: trace %q span %q", i, str("trace_id"), str("span_id"))
			}
		} else if _, ok := row["trace_id"]; ok {
			t.Errorf("entry %d: trace_id on an event without one", i)
		}
		// The line: a JSON object with the message and every attribute,
		// numbers as numbers.
		var line map[string]any
		if err := json.Unmarshal([]byte(str("_msg")), &line); err != nil {
			t.Fatalf("entry %d: line is not JSON: %v: %q", i, err, str("_msg"))
		}
		if line["message"] != ev.msg || line["event.kind"] != ev.kind || line["service"] != "bantay" {
			t.Errorf("entry %d: line %v", i, line)
		}
		for k, v := range ev.attrs {
			want := v
			if n, ok := v.(int64); ok {
				want = float64(n)
			}
			if line[k] != want {
				t.Errorf("entry %d: line[%s] = %#v, want %#v", i, k, line[k], want)
			}
		}
	}

	// The tenant header was honoured: nothing landed in the default tenant.
	if rows, err := vl.Query(ctx, `*`); err != nil || len(rows) != 0 {
		t.Errorf("default tenant has %d entries (err %v), want 0", len(rows), err)
	}
}

// TestVictoriaLogsOutage stops the receiver for two minutes while events
// are produced at a steady rate, then restarts it on the same port and
// data directory. One exporter's queue holds the whole outage: every
// event arrives. Another's queue is smaller than the outage: what it
// accepted arrives, and what it refused is exactly what exporterhelper
// counted as dropped.
//
// Meanwhile a metrics pipeline runs as the collector's does: every tick a
// batch of ten probes' failure counters goes to the store (a sink standing
// in for the TSDB) and to the failure_events connector, whose
// probe_failure bursts go to a third exporter. The producers must keep
// their schedule through the outage (the metrics pipeline is never slowed
// by Loki: a call that waited on the stopped receiver would hold them until
// it came back, which it does only after they finish), and every burst the
// connector emitted must arrive after the restart.
func TestVictoriaLogsOutage(t *testing.T) {
	testenv.LongTest(t, "two-minute outage test; run without -short")
	const (
		outage    = 2 * time.Minute
		perSecond = 5
		produced  = int(outage/time.Second) * perSecond // 600
		bigQueue  = int64(2 * produced)
		smallQ    = 100
		// The metrics pipeline: pipeProbes probes, each with one new
		// failure every failEvery ticks (after the first point, which only
		// sets the counter's base); with the connector's quiet_intervals
		// of 2 each failure is a burst of its own.
		pipeProbes = 10
		failEvery  = 3
		// slack is how far behind their schedule the producers may end on
		// a loaded machine; waiting on the stopped receiver even once
		// would put them the rest of the outage behind.
		slack = 15 * time.Second
	)
	wantBursts := pipeProbes * ((produced - 1) / failEvery)
	vl := victorialogs.Start(t)

	newCfg := func(queueSize int64) *Config {
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		cfg.Endpoint = vl.PushURL()
		cfg.QueueConfig.Get().QueueSize = queueSize
		if b := cfg.QueueConfig.Get().Batch.Get(); b != nil {
			b.MinSize = min(b.MinSize, queueSize)
		}
		cfg.BackOffConfig.InitialInterval = time.Second
		cfg.BackOffConfig.MaxInterval = 5 * time.Second
		cfg.BackOffConfig.MaxElapsedTime = 10 * time.Minute
		cfg.RateLimit.Enabled = false
		return cfg
	}
	big, bigDropped := startVLExporter(t, newCfg(bigQueue))
	small, smallDropped := startVLExporter(t, newCfg(smallQ))
	pipeExp, pipeDropped := startVLExporter(t, newCfg(DefaultQueueSize))

	connCfg := failureeventsconnector.NewFactory().CreateDefaultConfig().(*failureeventsconnector.Config)
	connCfg.ProbeInterval = time.Second
	connTel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = connTel.Shutdown(context.Background()) })
	connSet := connectortest.NewNopSettings(failureeventsconnector.NewFactory().Type())
	connSet.TelemetrySettings = connTel.NewTelemetrySettings()
	conn, err := failureeventsconnector.NewFactory().CreateMetricsToLogs(context.Background(), connSet, connCfg, pipeExp)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	store := new(consumertest.MetricsSink)
	counterStart := time.Now().Add(-time.Hour) // long-running probes

	vl.Stop(t)
	t.Logf("VictoriaLogs stopped; producing %d events at %d/s and the failure counters of %d probes for %s", produced, perSecond, pipeProbes, outage)

	// The producers run on their own goroutine so that a call held by the
	// outage fails the test instead of hanging it.
	var (
		accepted = map[string]int{}
		slowest  time.Duration
		errs     []error
	)
	began := time.Now()
	produce := make(chan struct{})
	go func() {
		defer close(produce)
		timed := func(f func() error) error {
			start := time.Now()
			err := f()
			slowest = max(slowest, time.Since(start))
			return err
		}
		tick := time.NewTicker(time.Second / perSecond)
		defer tick.Stop()
		for seq := range produced {
			<-tick.C
			for _, run := range []string{"big", "small"} {
				exp := map[string]exporter.Logs{"big": big, "small": small}[run]
				ld := plog.NewLogs()
				lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
				lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
				lr.Body().SetStr(fmt.Sprintf("probe failure %d", seq))
				a := lr.Attributes()
				a.PutStr("service", "bantay")
				a.PutStr("event.kind", "probe_failure")
				a.PutStr("src_city", "Manila")
				a.PutStr("carrier", "Globe")
				a.PutStr("island_group", "Luzon")
				a.PutStr("probe", fmt.Sprintf("mnl-%02d", seq%7))
				a.PutStr("outage_run", run)
				a.PutInt("seq", int64(seq))
				switch err := timed(func() error { return exp.ConsumeLogs(context.Background(), ld) }); {
				case err == nil:
					accepted[run]++
				case errors.Is(err, exporterhelper.ErrQueueIsFull):
				default:
					errs = append(errs, fmt.Errorf("%s: unexpected error: %w", run, err))
				}
			}
			md := failureCounters(pipeProbes, counterStart, time.Now(), int64(seq/failEvery))
			if err := store.ConsumeMetrics(context.Background(), md); err != nil {
				errs = append(errs, err)
			}
			if err := timed(func() error { return conn.ConsumeMetrics(context.Background(), md) }); err != nil {
				errs = append(errs, fmt.Errorf("failure_events refused metrics: %w", err))
			}
		}
	}()
	select {
	case <-produce:
	case <-time.After(outage + time.Minute):
		t.Fatalf("producers still running %s into a %s outage: a call is waiting on the stopped receiver", time.Since(began).Round(time.Second), outage)
	}
	took := time.Since(began)
	for _, err := range errs {
		t.Error(err)
	}
	t.Logf("accepted big=%d small=%d of %d each; producers took %s for %s of schedule; slowest call %s",
		accepted["big"], accepted["small"], produced, took.Round(time.Millisecond), outage, slowest)
	if took > outage+slack {
		t.Errorf("producers took %s for %s of schedule: the outage slowed them down", took, outage)
	}
	if n := store.DataPointCount(); n != produced*pipeProbes*2 {
		t.Errorf("the store got %d points, want %d", n, produced*pipeProbes*2)
	}
	// The connector hands its last bursts to its exporter's queue.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := conn.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, connTel, "bantay_failure_events_emitted"); n != int64(wantBursts) {
		t.Errorf("failure_events emitted %d bursts, want %d (one per failure)", n, wantBursts)
	}
	if n := counter(t, connTel, "bantay_failure_events_dropped"); n != 0 {
		t.Errorf("failure_events dropped %d bursts", n)
	}

	vl.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seqs := func(run string) map[int64]int {
		rows, err := vl.Query(ctx, fmt.Sprintf(`outage_run:=%s | fields seq`, run))
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]int{}
		for _, r := range rows {
			s, _ := r["seq"].(string)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("bad seq %q in %v", s, r)
			}
			got[n]++
		}
		return got
	}
	bursts := func() map[string]int {
		rows, err := vl.Query(ctx, `_stream:{kind="probe_failure"} probe:pipe-* | fields probe, first_time`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, r := range rows {
			p, _ := r["probe"].(string)
			ft, _ := r["first_time"].(string)
			got[p+" "+ft]++
		}
		return got
	}
	// Wait (bounded) for the retries to drain the three queues.
	var bigGot, smallGot map[int64]int
	var burstsGot map[string]int
	for {
		bigGot, smallGot, burstsGot = seqs("big"), seqs("small"), bursts()
		if len(bigGot) >= accepted["big"] && len(smallGot) >= accepted["small"] && len(burstsGot) >= wantBursts {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after restart only big=%d/%d small=%d/%d bursts=%d/%d delivered",
				len(bigGot), accepted["big"], len(smallGot), accepted["small"], len(burstsGot), wantBursts)
		case <-time.After(2 * time.Second):
		}
	}
	for _, exp := range []exporter.Logs{big, small, pipeExp} {
		if err := exp.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}

	// Within the bound: none lost.
	if accepted["big"] != produced {
		t.Errorf("big queue refused %d events although the outage fits in it", produced-accepted["big"])
	}
	for seq := range int64(produced) {
		if bigGot[seq] == 0 {
			t.Errorf("event %d lost", seq)
		}
	}
	if n := bigDropped(); n != 0 {
		t.Errorf("big queue counted %d drops", n)
	}
	if len(burstsGot) != wantBursts {
		t.Errorf("%d distinct probe_failure bursts delivered, want the %d emitted", len(burstsGot), wantBursts)
	}
	if n := pipeDropped(); n != 0 {
		t.Errorf("the connector's exporter counted %d drops", n)
	}
	// Beyond the bound: drops happen, are counted exactly, and everything
	// accepted still arrives.
	refused := produced - accepted["small"]
	if refused == 0 {
		t.Errorf("a %d-event queue took all %d outage events", smallQ, produced)
	}
	if n := smallDropped(); n != int64(refused) {
		t.Errorf("otelcol_exporter_enqueue_failed_log_records = %d, want the %d refused", n, refused)
	}
	if len(smallGot) != accepted["small"] {
		t.Errorf("small queue delivered %d distinct events, accepted %d", len(smallGot), accepted["small"])
	}
	for run, got := range map[string]map[int64]int{"big": bigGot, "small": smallGot} {
		for seq, n := range got {
			if n > 1 {
				// Not a loss, but worth seeing: a push that VictoriaLogs
				// stored as it shut down was retried.
				t.Logf("%s: event %d stored %d times", run, seq, n)
			}
		}
	}
}

// failureCounters is one export of n probes (pipe-00, pipe-01, …), each
// with its attempts and its cumulative timeouts counter at value, as
// citytag leaves them.
func failureCounters(n int, start, at time.Time, value int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for p := range n {
		probe := fmt.Sprintf("pipe-%02d", p)
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
		rm.Resource().Attributes().PutStr("service.instance.id", probe)
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		for _, name := range []string{"bantay.probe.attempts", "bantay.probe.failures"} {
			m := ms.AppendEmpty()
			m.SetName(name)
			m.SetEmptySum().SetIsMonotonic(true)
			m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dp := m.Sum().DataPoints().AppendEmpty()
			a := dp.Attributes()
			for k, v := range map[string]string{
				"src_city": "Davao", "island_group": "Mindanao", "carrier": "Globe", "network_type": "5g",
				"dst_city": "Manila", "probe": probe, "target": "203.0.113.7:443", "method": "tcp",
			} {
				a.PutStr(k, v)
			}
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
			dp.SetIntValue(1_000_000 + value)
			if name == "bantay.probe.failures" {
				a.PutStr("reason", "timeout")
				dp.SetIntValue(100 + value)
			}
		}
	}
	return md
}

// TestVictoriaLogsDownABatchQueuesWhatFits: with the receiver down,
// nothing leaves the queue, and the producer hands over batches of 100
// events (the bantay_events receiver's max_batch). The third batch fits
// only half: that half is queued, the rest dropped and counted. After the
// restart everything queued arrives: delivered + dropped = published, and
// dropped is the least the queue bound allows (published - queue_size).
func TestVictoriaLogsDownABatchQueuesWhatFits(t *testing.T) {
	const (
		batches, perBatch = 3, 100
		published         = batches * perBatch
		queueSize         = 250
	)
	vl := victorialogs.Start(t)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Endpoint = vl.PushURL()
	cfg.QueueConfig.Get().QueueSize = queueSize
	cfg.BackOffConfig.InitialInterval = 100 * time.Millisecond
	cfg.BackOffConfig.MaxInterval = time.Second
	cfg.BackOffConfig.MaxElapsedTime = 5 * time.Minute
	cfg.RateLimit.Enabled = false
	exp, tt := startExporter(t, cfg)

	vl.Stop(t)
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var errs []error
	for b := range batches {
		ld := plog.NewLogs()
		lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
		for i := range perBatch {
			seq := b*perBatch + i
			lr := lrs.AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(seq) * time.Millisecond)))
			lr.Body().SetStr("queue fit " + strconv.Itoa(seq))
			lr.Attributes().PutStr("service", "bantay")
			lr.Attributes().PutStr("event.kind", "probe_failure")
			lr.Attributes().PutStr("queue_fit_run", "1")
			lr.Attributes().PutInt("seq", int64(seq))
		}
		if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) != 1 || !errors.Is(errs[0], exporterhelper.ErrQueueIsFull) {
		t.Errorf("errors %v, want one ErrQueueIsFull (the third batch)", errs)
	}
	dropped := counter(t, tt, "bantay_loki_queue_full_events")
	t.Logf("dropped %d of %d; enqueue_failed_log_records %d; error %v", dropped, published, counter(t, tt, "otelcol_exporter_enqueue_failed_log_records"), errs)

	vl.Restart(t)
	t.Logf("VictoriaLogs restarted")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var got map[int64]int
	for {
		rows, err := vl.Query(ctx, `queue_fit_run:=1 | fields seq`)
		if err != nil {
			t.Fatal(err)
		}
		got = map[int64]int{}
		for _, r := range rows {
			s, _ := r["seq"].(string)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("bad seq %q in %v", s, r)
			}
			got[n]++
		}
		if int64(len(got))+dropped >= published {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after restart %d delivered and %d dropped of %d published", len(got), dropped, published)
		case <-time.After(time.Second):
		}
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if delivered := int64(len(got)); delivered+dropped != published || dropped != published-queueSize {
		t.Errorf("delivered %d + dropped %d, want %d + %d = %d published", delivered, dropped, queueSize, published-queueSize, published)
	}
	// What fitted is the first queue_size events, in the order handed over.
	for seq := range int64(queueSize) {
		if got[seq] == 0 {
			t.Errorf("event %d, which fitted, was not delivered", seq)
		}
	}
}
