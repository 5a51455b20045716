package scaleouttest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/internal/harness/modbuild"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/thanos"
)

const shards = 3

// TestThreeShardsBehindThanos runs three real collectors, each owning the
// probes of its cities, remote-writing to a real Thanos receive; the load
// tool's fleet is spread over them, and one collector is killed (SIGKILL)
// and restarted under load. Every point a collector acknowledged must then
// be queryable through Thanos query, labelled with its shard, and a shipped
// dashboard's query through Thanos must show every shard's cities.
func TestThreeShardsBehindThanos(t *testing.T) {
	testenv.LongTest(t, "three collectors behind Thanos")
	th := thanos.Start(t)
	bin := collectorBinary(t)

	// Six probes over six cities, all five carriers each; probe i (and so
	// city i) belongs to shard i mod 3, as the registry of each shard says.
	fleet, err := otlpload.NewFleet(6, 1, otlpload.MaxUplinks)
	if err != nil {
		t.Fatal(err)
	}
	owned := make([][]otlpload.Probe, shards)
	for i, p := range fleet {
		owned[i%shards] = append(owned[i%shards], p)
	}
	cols := make([]*collector, shards)
	for i := range cols {
		cols[i] = newCollector(t, bin, fmt.Sprintf("shard-%d", i), owned[i], th.RemoteWriteURL())
		cols[i].start(t)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The load runs until shard-1 has been killed, restarted and has
	// acknowledged again (bounded by duration), not for a fixed time: how
	// long remote write takes to reach Thanos on a busy machine varies.
	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	const interval, duration = time.Second, 2 * time.Minute
	loads := make([]*otlpload.Load, shards)
	reports := make([]otlpload.Report, shards)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for i, c := range cols {
		sender, err := otlpload.NewSender(otlpload.GRPC, c.grpc)
		if err != nil {
			t.Fatal(err)
		}
		defer sender.Close()
		loads[i] = &otlpload.Load{Streams: otlpload.Streams(owned[i], time.Now()), Sender: sender,
			Interval: interval, Concurrency: len(owned[i]) * otlpload.MaxUplinks, Duration: duration, Timeout: 5 * time.Second}
		wg.Go(func() { reports[i], errs[i] = loads[i].Run(load) })
	}

	api, err := otlpload.NewAPI(th.QueryURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	// Shard-1 dies mid-run with what it acknowledged in its WAL (and
	// perhaps not yet sent to Thanos), and comes back on its data. It is
	// killed once some of its data is in Thanos, so the test shows a shard
	// going silent, not one that never spoke.
	victim := cols[1]
	var latest map[string]time.Time
	eventually(func() bool { latest, err = latestByShard(ctx, api); return err == nil && !latest["shard-1"].IsZero() })
	if latest["shard-1"].IsZero() {
		t.Fatalf("shard-1's data never reached Thanos: latest sample per shard %v (err %v)", latest, err)
	}
	victim.kill(t)
	killed := time.Now()
	before := loads[1].Counts().Acked
	checkOnlyShardSilent(t, ctx, api, killed)
	victim.start(t)
	// Five more exports of every shard-1 uplink after its restart.
	waitAcked(t, ctx, loads[1], before+5*int64(len(loads[1].Streams)*loads[1].Streams[0].Points()))
	stopLoad()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard-%d load: %v", i, err)
		}
		if reports[i].Acked == 0 {
			t.Fatalf("shard-%d acknowledged nothing: %+v", i, reports[i])
		}
	}

	for i, rep := range reports {
		// Acknowledged means stored: in the shard's own store, killed or not.
		local, err := otlpload.NewAPI("http://"+cols[i].web, "")
		if err != nil {
			t.Fatal(err)
		}
		if st, err := otlpload.CountStored(ctx, local, rep); err != nil || st.Missing != 0 {
			t.Errorf("shard-%d's own store: %d of %d acknowledged points missing (%+v, err %v)", i, st.Missing, rep.Acked, st, err)
		}
		// Through Thanos, once remote write has caught up (polled: it ships
		// on its own schedule). Missing is counted per probe of this shard;
		// the other shards' probes are the Surplus, ignored here.
		// The killed shard too: what it acknowledged but had not shipped at
		// the kill, and its probes' backlog stamped before its restart, are
		// sent by its remote-write backfill (internal/store/backfill.go).
		var st otlpload.Stored
		eventually(func() bool { st, err = otlpload.CountStored(ctx, api, rep); return err == nil && st.Missing == 0 })
		if err != nil || st.Missing != 0 {
			t.Errorf("shard-%d through Thanos query: %d of %d acknowledged points missing (%+v, err %v)", i, st.Missing, rep.Acked, st, err)
		}
		rw := remoteWritten(t, cols[i].web)
		t.Logf("shard-%d: %d points acknowledged, %d refused while down; through Thanos %d missing (err %v); remote write since (re)start: %.0f samples, %.0f bytes (%.1f B/sample); backfill: %.0f samples sent, %.0f refused",
			i, rep.Acked, rep.Offered-rep.Acked-rep.Skipped, st.Missing, err, rw.samples, rw.bytes, rw.bytes/rw.samples, rw.backfilled, rw.backfillRefused)
	}

	checkShardLabels(t, ctx, api, owned)
	checkDashboard(t, ctx, api, fleet)
	if t.Failed() {
		t.Logf("thanos:\n%s\nshard-1:\n%s", modbuild.Tail(th.Logs(), 4000), modbuild.Tail(victim.out.String(), 4000))
	}
}

// checkOnlyShardSilent: while shard-1 is down, the NOC sees through Thanos
// that its series stopped at the kill and that the other shards' go on.
func checkOnlyShardSilent(t *testing.T, ctx context.Context, api promv1.API, killed time.Time) {
	t.Helper()
	var latest map[string]time.Time
	var err error
	alive := func() bool { return latest["shard-0"].After(killed) && latest["shard-2"].After(killed) }
	eventually(func() bool { latest, err = latestByShard(ctx, api); return err == nil && alive() })
	if err != nil || !alive() {
		t.Fatalf("the live shards' data after the kill at %v never reached Thanos: latest sample per shard %v (err %v)", killed, latest, err)
	}
	if l := latest["shard-1"]; l.After(killed) {
		t.Fatalf("the killed shard-1: latest sample through Thanos at %v, after the kill at %v", l, killed)
	}
}

// latestByShard is the time of each shard's latest sample through Thanos.
func latestByShard(ctx context.Context, api promv1.API) (map[string]time.Time, error) {
	v, _, _, err := api.Query(ctx, `max by (bantay_shard) (timestamp(bantay_probe_attempts_total))`, time.Now())
	if err != nil {
		return nil, err
	}
	latest := map[string]time.Time{}
	for _, s := range v.(model.Vector) {
		latest[string(s.Metric["bantay_shard"])] = time.UnixMilli(int64(float64(s.Value) * 1000))
	}
	return latest, nil
}

// checkShardLabels: every probe's series carry the external label of the
// shard that owns it, so a NOC sees which collector a series came from.
func checkShardLabels(t *testing.T, ctx context.Context, api promv1.API, owned [][]otlpload.Probe) {
	t.Helper()
	v, _, _, err := api.Query(ctx, `count by (bantay_shard, instance) (network_latency_milliseconds_count)`, time.Now())
	if err != nil {
		t.Fatalf("query shard labels: %v", err)
	}
	got := map[string]string{}
	for _, s := range v.(model.Vector) {
		got[string(s.Metric["instance"])] = string(s.Metric["bantay_shard"])
	}
	for i, probes := range owned {
		for _, p := range probes {
			if want := fmt.Sprintf("shard-%d", i); got[p.ID] != want {
				t.Errorf("probe %s: bantay_shard %q through Thanos, want %q", p.ID, got[p.ID], want)
			}
		}
	}
}

// checkDashboard runs the city matrix's p50 panel, as Grafana would with
// Thanos query as its Prometheus data source, and wants every city of every
// shard in it: the NOC-wide view across shards.
func checkDashboard(t *testing.T, ctx context.Context, api promv1.API, fleet []otlpload.Probe) {
	t.Helper()
	path := filepath.Join("..", "..", "..", "dashboards", "grafana", "city-matrix.json")
	queries, err := promtest.DashboardQueries(path)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := promtest.DashboardVariables(path)
	if err != nil {
		t.Fatal(err)
	}
	vars := promtest.BuiltinVars(15*time.Second, 5*time.Minute, 15*time.Second)
	vars["carrier"], vars["network_type"] = []string{"Globe"}, []string{"5g"}
	vars["src_city"], vars["dst_city"] = []string{"$__all"}, []string{"$__all"}
	var expr string
	for _, q := range queries {
		if strings.HasPrefix(q.Panel, "p50 latency") {
			expr = promtest.ExpandDashboardVars(q.Expr, vars, defs)
		}
	}
	if expr == "" {
		t.Fatalf("%s: no p50 latency panel", path)
	}
	v, _, _, err := api.Query(ctx, expr, time.Now())
	if err != nil {
		t.Fatalf("dashboard query %s: %v", expr, err)
	}
	seen := map[string]bool{}
	for _, s := range v.(model.Vector) {
		seen[string(s.Metric["src_city"])] = true
	}
	for _, p := range fleet {
		if !seen[p.City] {
			t.Errorf("city matrix through Thanos has no row for %s (probe %s); query %s gave %v", p.City, p.ID, expr, v)
		}
	}
}

// written is what a collector's /metrics says it remote-wrote since it
// (re)started: Prometheus's own queue totals, and the backfill's.
type written struct{ samples, bytes, backfilled, backfillRefused float64 }

// remoteWritten reads the collector's remote-write totals from its
// /metrics, for SCALING.md's bandwidth and backfill figures.
func remoteWritten(t *testing.T, web string) written {
	t.Helper()
	resp, err := http.Get("http://" + web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(name, result string) (v float64) {
		if f := fams[name]; f != nil {
			for _, m := range f.GetMetric() {
				if result != "" && !hasLabel(m.GetLabel(), "result", result) {
					continue
				}
				v += m.GetCounter().GetValue()
			}
		}
		return v
	}
	const backfill = "bantay_remote_write_backfill_samples_total"
	return written{samples: sum("prometheus_remote_storage_samples_total", ""), bytes: sum("prometheus_remote_storage_bytes_total", ""),
		backfilled: sum(backfill, "sent"), backfillRefused: sum(backfill, "refused")}
}

func hasLabel(ls []*dto.LabelPair, name, value string) bool {
	for _, l := range ls {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// eventually polls cond every 500 ms, at most 120 times: remote write
// ships on its own schedule, so the test waits for it instead of assuming
// a delay.
func eventually(cond func() bool) {
	for range 120 {
		if cond() {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitAcked waits (bounded) until l has acknowledged at least n points.
func waitAcked(t *testing.T, ctx context.Context, l *otlpload.Load, n int64) {
	t.Helper()
	for range 1200 {
		if l.Counts().Acked >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("load acknowledged %d points, waited for %d", l.Counts().Acked, n)
}

// collectorBinary is bantay-collector, built once per test run.
func collectorBinary(t *testing.T) string {
	return testenv.Command(t, "github.com/bantay-noc/bantay/collector/cmd/bantay-collector")
}

// collector is one shard's bantay-collector: its ports, config and data
// directory survive a kill and restart.
type collector struct {
	bin, config, web, grpc string
	cmd                    *exec.Cmd
	exited                 chan struct{}
	out                    *modbuild.Output
}

func newCollector(t *testing.T, bin, shard string, probes []otlpload.Probe, remoteWrite string) *collector {
	t.Helper()
	dir := t.TempDir()
	c := &collector{bin: bin, config: filepath.Join(dir, "collector.yaml"), web: testenv.FreeAddr(t), grpc: testenv.FreeAddr(t), out: &modbuild.Output{}}
	// The shard's name is an external label: Thanos keeps it on every
	// series this collector writes.
	prom := fmt.Sprintf(`global:
  external_labels: {bantay_shard: %q}
remote_write:
  - url: %s
`, shard, remoteWrite)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(prom), 0o644); err != nil {
		t.Fatal(err)
	}
	var reg strings.Builder
	for _, p := range probes {
		fmt.Fprintf(&reg, "      %s:\n        city: %q\n        uplinks:\n", p.ID, p.City)
		for _, u := range p.Uplinks {
			fmt.Fprintf(&reg, "          - {carrier: %s, network_type: %s}\n", u.Carrier, u.NetworkType)
		}
	}
	cfg := fmt.Sprintf(`extensions:
  bantay:
    endpoint: %s
    prometheus_config: %s
    storage: {path: %s}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %s}
processors:
  citytag:
    probes:
%s
  delta_to_cumulative: {}
exporters:
  tsdb: {}
  heatmap: {}
service:
  extensions: [bantay]
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [citytag, delta_to_cumulative]
      exporters: [tsdb, heatmap]
  telemetry:
    logs: {level: warn}
    metrics: {level: none}
`, c.web, filepath.Join(dir, "prometheus.yml"), filepath.Join(dir, "data"), c.grpc, reg.String())
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs the collector and waits (bounded) until it is ready.
func (c *collector) start(t *testing.T) {
	t.Helper()
	c.cmd = exec.Command(c.bin, "--config", c.config)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := c.cmd, make(chan struct{})
	c.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	for range 600 {
		select {
		case <-exited:
			t.Fatalf("collector exited during start:\n%s", modbuild.Tail(c.out.String(), 4000))
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + c.web + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("collector not ready after 60s:\n%s", modbuild.Tail(c.out.String(), 4000))
}

// kill ends the collector with SIGKILL: no shutdown, no flush.
func (c *collector) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
}
