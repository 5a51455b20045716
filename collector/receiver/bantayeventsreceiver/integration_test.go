package bantayeventsreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector"
	"github.com/bantay-noc/bantay/exporters/lokiexporter"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/harness/victorialogs"
)

// kindCounter passes log records on to the exporter and counts their
// kinds, so the test knows which state the heatmap has reached.
type kindCounter struct {
	next consumer.Logs
	mu   sync.Mutex
	seen map[string]int
}

func (k *kindCounter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	k.mu.Lock()
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for n := 0; n < lrs.Len(); n++ {
				k.seen[kindOf(lrs.At(n))]++
			}
		}
	}
	k.mu.Unlock()
	return k.next.ConsumeLogs(ctx, ld)
}

func (k *kindCounter) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (k *kindCounter) count(kind string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seen[kind]
}

// failureSeries is one probe's failure counter as citytag leaves it.
type failureSeries struct {
	probe, srcCity, islandGroup, carrier, networkType, dstCity, target, method, reason string
}

// failuresAt is one export of the probe: its attempts and failures points.
func (s failureSeries) failuresAt(start, at time.Time, failures int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", s.probe)
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for _, name := range []string{"bantay.probe.attempts", "bantay.probe.failures"} {
		m := ms.AppendEmpty()
		m.SetName(name)
		m.SetEmptySum().SetIsMonotonic(true)
		m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := m.Sum().DataPoints().AppendEmpty()
		a := dp.Attributes()
		for k, v := range map[string]string{
			"src_city": s.srcCity, "island_group": s.islandGroup, "carrier": s.carrier, "network_type": s.networkType,
			"dst_city": s.dstCity, "probe": s.probe, "target": s.target, "method": s.method,
		} {
			a.PutStr(k, v)
		}
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetIntValue(1000)
		if name == "bantay.probe.failures" {
			a.PutStr("reason", s.reason)
			dp.SetIntValue(failures)
		}
	}
	return md
}

// TestVictoriaLogsEventSources drives every event source through the
// production components into a real Loki-protocol store: a real heatmap fed
// through Observe (a path degrades, goes stale, comes back, recovers) and
// the real event bus (rules reloaded) through this receiver, probe failure
// counters through the failure_events connector, both into the real loki
// exporter, pushing to VictoriaLogs; the events are read back with LogsQL.
func TestVictoriaLogsEventSources(t *testing.T) {
	vl := victorialogs.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The loki exporter, as in production, built through its factory.
	expCfg := lokiexporter.NewFactory().CreateDefaultConfig().(*lokiexporter.Config)
	expCfg.Endpoint = vl.PushURL()
	// Keep the line as Loki stores it, so that labels, structured
	// metadata and the JSON line can each be checked on their own.
	expCfg.Headers.Set("VL-Loki-Disable-Message-Parsing", "true")
	expSet := exportertest.NewNopSettings(lokiexporter.NewFactory().Type())
	exp, err := lokiexporter.NewFactory().CreateLogs(ctx, expSet, expCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	// The exporter's Shutdown must run exactly once (exporterhelper
	// panics on a second call): at the end, or here if the test fails.
	var expDown sync.Once
	shutdownExp := func() (err error) {
		expDown.Do(func() { err = exp.Shutdown(ctx) })
		return err
	}
	defer func() { _ = shutdownExp() }()
	logs := &kindCounter{next: exp, seen: map[string]int{}}

	// The connector, fed the metrics pipeline's failure counters.
	connCfg := failureeventsconnector.NewFactory().CreateDefaultConfig().(*failureeventsconnector.Config)
	conn, err := failureeventsconnector.NewFactory().CreateMetricsToLogs(ctx,
		connectortest.NewNopSettings(failureeventsconnector.NewFactory().Type()), connCfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Shutdown(context.Background()) }()

	// The receiver, on a real heatmap and bus held by an extension.
	hm := newTestHeatmap(t)
	bus, err := events.NewBus(64, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, _, err := startReceiver(t, testConfig(), hosttest.With(&hosttest.Provider{Map: hm, Bus: bus}), logs)
	if err != nil {
		t.Fatal(err)
	}

	// Probe failures two minutes ago: dvo-01 times out 5 times on Globe
	// 5g, bgo-01 has one DNS failure on Smart fiber.
	base := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	dvo := failureSeries{"dvo-01", "Davao", "Mindanao", "Globe", "5g", "Manila", "203.0.113.7:443", "tcp", "timeout"}
	bgo := failureSeries{"bgo-01", "Baguio", "Luzon", "Smart", "fiber", "Cebu", "https://198.51.100.20/health", "http", "dns"}
	started := base.Add(-time.Hour)
	for i, v := range []int64{10, 11, 13, 15, 15, 15} {
		at := base.Add(time.Duration(i) * 15 * time.Second)
		if err := conn.ConsumeMetrics(ctx, dvo.failuresAt(started, at, v)); err != nil {
			t.Fatal(err)
		}
		if err := conn.ConsumeMetrics(ctx, bgo.failuresAt(started, at.Add(5*time.Second), []int64{0, 1, 1, 1, 1, 1}[i])); err != nil {
			t.Fatal(err)
		}
	}

	// The path: degraded, then stale (no data), then back and recovered.
	p := newPath(hm, "dvo-01", dvoMnl, time.Now().Add(-51*time.Second))
	p.degrade(time.Now())
	startHeatmap(t, hm)
	waitFor(t, "path_degraded", func() bool { return logs.count("path_degraded") == 1 })
	waitFor(t, "path_stale", func() bool { return logs.count("path_stale") == 1 })
	p.recover(time.Now())
	waitFor(t, "path_back and path_recovered", func() bool {
		return logs.count("path_back") == 1 && logs.count("path_recovered") == 1
	})
	// No more path judgements: on a loaded machine the path could
	// otherwise go stale again before the receiver is shut down.
	if err := hm.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both probe failure bursts", func() bool { return logs.count("probe_failure") == 2 })
	bus.Publish(events.RulesReloaded(time.Now(), 2, 14, nil))

	// Shut down in the collector's order: receivers and connectors hand on
	// what they hold, then the exporter drains its queue into the store.
	if err := rcv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := shutdownExp(); err != nil {
		t.Fatal(err)
	}

	rows, err := vl.Query(ctx, `* | sort by (_time)`)
	if err != nil {
		t.Fatal(err)
	}
	str := func(row map[string]any, k string) string { s, _ := row[k].(string); return s }
	var kinds []string
	for _, row := range rows {
		kinds = append(kinds, str(row, "kind"))
	}
	wantKinds := []string{"probe_failure", "probe_failure", "path_degraded", "path_stale", "path_back", "path_recovered", "rules_reloaded"}
	if strings.Join(kinds, ",") != strings.Join(wantKinds, ",") {
		t.Fatalf("kinds in time order %v, want %v\nrows: %v\nVictoriaLogs log:\n%s", kinds, wantKinds, rows, vl.Logs())
	}

	// Labels: exactly the bounded ones; metadata: the rest.
	check := func(i int, stream string, meta map[string]string) {
		t.Helper()
		row := rows[i]
		if str(row, "_stream") != stream {
			t.Errorf("%s: _stream %s, want %s", kinds[i], str(row, "_stream"), stream)
		}
		for k, want := range meta {
			if got := str(row, k); got != want {
				t.Errorf("%s: %s = %q, want %q", kinds[i], k, got, want)
			}
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(str(row, "_msg")), &line); err != nil {
			t.Errorf("%s: line is not JSON: %v", kinds[i], err)
		} else if msg, _ := line["message"].(string); msg == "" {
			t.Errorf("%s: line without message: %v", kinds[i], line)
		}
	}
	dvoStream := func(kind string) string {
		return fmt.Sprintf(`{carrier="Globe",island_group="Mindanao",kind="%s",service="bantay",src_city="Davao"}`, kind)
	}
	check(0, dvoStream("probe_failure"), map[string]string{
		"probe": "dvo-01", "dst_city": "Manila", "network_type": "5g", "target": "203.0.113.7:443", "method": "tcp",
		"reason": "timeout", "count": "5", "error": "no answer within the probe timeout", "level": "warn",
		"first_time": base.Add(15 * time.Second).UTC().Format(time.RFC3339Nano),
		"last_time":  base.Add(45 * time.Second).UTC().Format(time.RFC3339Nano),
	})
	if ts, err := time.Parse(time.RFC3339Nano, str(rows[0], "_time")); err != nil || !ts.Equal(base.Add(15*time.Second)) {
		t.Errorf("probe_failure _time %q, want the burst's first failure %s", str(rows[0], "_time"), base.Add(15*time.Second))
	}
	check(1, `{carrier="Smart",island_group="Luzon",kind="probe_failure",service="bantay",src_city="Baguio"}`, map[string]string{
		"probe": "bgo-01", "dst_city": "Cebu", "target": "https://198.51.100.20/health", "reason": "dns", "count": "1",
	})
	pathMeta := map[string]string{"dst_city": "Manila", "network_type": "5g", "dst_island_group": "Luzon"}
	check(2, dvoStream("path_degraded"), merge(pathMeta, map[string]string{"reason": "latency", "level": "warn", "window": "5s"}))
	check(3, dvoStream("path_stale"), merge(pathMeta, map[string]string{"level": "warn"}))
	check(4, dvoStream("path_back"), merge(pathMeta, map[string]string{"level": "info"}))
	check(5, dvoStream("path_recovered"), merge(pathMeta, map[string]string{"level": "info"}))
	check(6, `{kind="rules_reloaded",service="bantay"}`, map[string]string{"rules": "14", "groups": "2"})
	for _, i := range []int{2, 5} {
		if str(rows[i], "p95_before_ms") == "" || str(rows[i], "p95_after_ms") == "" {
			t.Errorf("%s without its p95 numbers: %v", kinds[i], rows[i])
		}
	}
	for i := 2; i <= 5; i++ {
		if _, ok := rows[i]["probe"]; ok {
			t.Errorf("%s carries a probe although a path aggregates all of them", kinds[i])
		}
	}
	if !strings.Contains(str(rows[3], "_msg"), "Davao → Manila on Globe 5g stale: no data for") {
		t.Errorf("stale line %s", str(rows[3], "_msg"))
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
