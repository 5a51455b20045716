package history

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
)

// probeSeries is the store's series of n targets on one uplink, in the
// probe's shape, plus the uplink's target_info.
func probeSeries(n int) []labels.Labels {
	base := map[string]string{"job": "bantay-probe", "instance": "mnl-01", "src_city": "Manila", "carrier": "Globe",
		"network_type": "5g", "probe": "mnl-01", "region": "NCR", "island_group": "Luzon", "method": "udp"}
	info := labels.NewBuilder(labels.FromMap(base)).Set(model.MetricNameLabel, "target_info").Labels()
	out := []labels.Labels{info}
	for i := range n {
		target := labels.NewBuilder(labels.FromMap(base)).Set("target", fmt.Sprintf("udp-davao-%d", i)).Set("dst_city", "Davao").Labels()
		out = append(out, TargetSeries(target)...)
	}
	return out
}

// TestWriteIsReadByTheTSDBAsProbeData writes five hours of two targets and
// reads them back through a TSDB and PromQL: one block per 2 h window, a
// sample per series per interval, counters that only grow, attempts that
// add up to answered probes plus timeouts, and a median latency near the
// path's base.
func TestWriteIsReadByTheTSDBAsProbeData(t *testing.T) {
	dir := t.TempDir()
	lsets := probeSeries(2)
	start := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	end := start.Add(5 * time.Hour)
	st, err := Write(context.Background(), dir, lsets, Options{Start: start, End: end, Interval: 15 * time.Second,
		BlockDuration: 2 * time.Hour, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	// 01:00–02:00, 02:00–04:00, 04:00–06:00; the first sample is at 01:00:15.
	perSeries := int64(5*3600/15 - 1)
	if st.Blocks != 3 || st.Series != len(lsets) || st.Samples != perSeries*int64(len(lsets)) {
		t.Fatalf("stats %+v, want 3 blocks, %d series, %d samples", st, len(lsets), perSeries*int64(len(lsets)))
	}
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := len(db.Blocks()); n != 3 {
		t.Fatalf("%d blocks, want 3", n)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute})
	instant := func(expr string) promql.Vector {
		t.Helper()
		q, err := engine.NewInstantQuery(context.Background(), db, nil, expr, end)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		r := q.Exec(context.Background())
		if r.Err != nil {
			t.Fatalf("%s: %v", expr, r.Err)
		}
		v, err := r.Vector()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	one := func(expr string) float64 {
		t.Helper()
		v := instant(expr)
		if len(v) != 1 {
			t.Fatalf("%s: %d results, want 1: %v", expr, len(v), v)
		}
		return v[0].F
	}
	if n := one(`count({job="bantay-probe"})`); int(n) != len(lsets) {
		t.Errorf("%v series in the TSDB, want %d", n, len(lsets))
	}
	if n := one(`sum(count_over_time(bantay_probe_attempts_total[6h]))`); int64(n) != 2*perSeries {
		t.Errorf("%v attempts samples, want %d", n, 2*perSeries)
	}
	if n := one(`sum(resets(bantay_probe_attempts_total[6h])) + sum(resets(network_latency_milliseconds_bucket[6h]))`); n != 0 {
		t.Errorf("%v counter resets, want 0", n)
	}
	if d := one(`sum(bantay_probe_attempts_total) - sum(network_latency_milliseconds_count) - sum(bantay_probe_failures_total)`); d != 0 {
		t.Errorf("attempts - answered - failed = %v, want 0", d)
	}
	if n := one(`sum(bantay_probe_attempts_total)`); int64(n) != 2*perSeries {
		t.Errorf("%v attempts, want %d", n, 2*perSeries)
	}
	for _, s := range instant(`histogram_quantile(0.5, sum by (target, le) (rate(network_latency_milliseconds_bucket[1h])))`) {
		if math.IsNaN(s.F) || s.F < 2 || s.F > 100 {
			t.Errorf("%s: median latency %v ms, want a path's (2–100 ms)", s.Metric, s.F)
		}
	}
	if n := one(`count(bantay_probe_jitter_milliseconds_total > 0)`); n != 2 {
		t.Errorf("%v targets with jitter, want 2", n)
	}
}

// TestWriteRefusesForeignBuckets: a bucket bound the probe does not use
// means the label sets are not the probe's, which would make the values
// wrong; Write says which series.
func TestWriteRefusesForeignBuckets(t *testing.T) {
	ls := labels.FromStrings(model.MetricNameLabel, "x_bucket", "le", "0.7")
	_, err := Write(context.Background(), t.TempDir(), []labels.Labels{ls}, Options{Start: time.Unix(0, 0),
		End: time.Unix(3600, 0), Interval: 15 * time.Second, BlockDuration: 2 * time.Hour, Workers: 1})
	if err == nil || !strings.Contains(err.Error(), `le "0.7"`) {
		t.Fatalf("err %v, want the series' bad le named", err)
	}
}

// BenchmarkWrite measures what generating history costs per sample, to
// size a run before starting it (docs/BENCHMARKS.md).
func BenchmarkWrite(b *testing.B) {
	lsets := probeSeries(250) // 10,501 series
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		dir := b.TempDir()
		st, err := Write(context.Background(), dir, lsets, Options{Start: start, End: start.Add(2 * time.Hour),
			Interval: 15 * time.Second, BlockDuration: 2 * time.Hour, Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Elapsed.Nanoseconds())/float64(st.Samples), "ns/sample")
		b.ReportMetric(float64(dirSize(b, dir))/float64(st.Samples), "B/sample")
	}
}

func dirSize(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestCompactLeavesPrometheusLayout: eleven hours of 2 h blocks compacted
// with Prometheus's ranges up to 36 h (15 d retention) become one 6 h block
// (00:00–06:00) and the three blocks after it that do not fill one
// (06:00–08:00, 08:00–10:00, 10:00–11:00), as Prometheus's compaction leaves them.
func TestCompactLeavesPrometheusLayout(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Write(context.Background(), dir, probeSeries(1), Options{Start: start, End: start.Add(11 * time.Hour),
		Interval: time.Minute, BlockDuration: 2 * time.Hour, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	n, err := Compact(context.Background(), dir, 36*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := tsdb.OpenDBReadOnly(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blocks, err := db.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	var ranges []time.Duration
	for _, b := range blocks {
		m := b.Meta()
		ranges = append(ranges, time.Duration(m.MaxTime-m.MinTime)*time.Millisecond)
	}
	if n != len(blocks) || len(blocks) != 4 || ranges[0] < 5*time.Hour || ranges[1] > 2*time.Hour {
		t.Fatalf("Compact said %d blocks; blocks span %v, want 6h then three of 2h or less", n, ranges)
	}
}
