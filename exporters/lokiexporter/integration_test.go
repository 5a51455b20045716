package lokiexporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/testenv"
	"github.com/bantay-noc/bantay/internal/victorialogs"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
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
func TestVictoriaLogsOutage(t *testing.T) {
	testenv.LongTest(t, "two-minute outage test; run without -short")
	const (
		outage    = 2 * time.Minute
		perSecond = 5
		produced  = int(outage/time.Second) * perSecond // 600
		bigQueue  = int64(2 * produced)
		smallQ    = 100
	)
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

	vl.Stop(t)
	t.Logf("VictoriaLogs stopped; producing %d events at %d/s for %s", produced, perSecond, outage)

	accepted := map[string]int{}
	var slowest time.Duration
	tick := time.NewTicker(time.Second / perSecond)
	for seq := range produced {
		<-tick.C
		for run, exp := range map[string]exporter.Logs{"big": big, "small": small} {
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
			start := time.Now()
			err := exp.ConsumeLogs(context.Background(), ld)
			slowest = max(slowest, time.Since(start))
			switch {
			case err == nil:
				accepted[run]++
			case errors.Is(err, exporterhelper.ErrQueueIsFull):
			default:
				t.Fatalf("%s: unexpected error: %v", run, err)
			}
		}
	}
	tick.Stop()
	// Informational: producers were never made to wait on the outage.
	t.Logf("accepted big=%d small=%d of %d each; slowest ConsumeLogs %s", accepted["big"], accepted["small"], produced, slowest)

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
	// Wait (bounded) for the retries to drain both queues.
	var bigGot, smallGot map[int64]int
	for {
		bigGot, smallGot = seqs("big"), seqs("small")
		if len(bigGot) >= accepted["big"] && len(smallGot) >= accepted["small"] {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after restart only big=%d/%d small=%d/%d delivered", len(bigGot), accepted["big"], len(smallGot), accepted["small"])
		case <-time.After(2 * time.Second):
		}
	}
	if err := big.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := small.Shutdown(ctx); err != nil {
		t.Error(err)
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
