package heatmapexporter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/exporters/heatmapexporter/internal/metadata"
	"github.com/bantay-noc/bantay/exporters/tsdbexporter"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/internal/store"
)

// stalled is the real heatmap whose Observe waits until gate is closed:
// what the pipeline saw while a broadcast tick held the aggregation.
type stalled struct {
	*heatmap.Heatmap
	gate chan struct{}
}

func (s *stalled) Observe(p *aggregate.Point) {
	<-s.gate
	s.Heatmap.Observe(p)
}

// TestAckDoesNotWaitForTheHeatmap: while the heatmap cannot take a point,
// the export still returns at once (before, it waited in Observe, and so
// did the probe's acknowledgement); once the queue is full, further
// batches are dropped, counted, and still answered with success; what was
// queued reaches the heatmap when it is free again.
func TestAckDoesNotWaitForTheHeatmap(t *testing.T) {
	hm, err := heatmap.New(heatmap.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	st := &stalled{Heatmap: hm, gate: make(chan struct{})}
	tel := componenttest.NewTelemetry()
	defer tel.Shutdown(context.Background())
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	cfg := createDefaultConfig().(*Config)
	q := cfg.QueueConfig.Get()
	q.QueueSize = 9 // three batches of three points, the one in Observe included
	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), hosttest.With(&hosttest.Provider{Map: st})); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	start := now.Add(-50 * time.Second)
	done := make(chan error)
	go func() {
		// The queue's bound counts what is being consumed too: the first
		// batch (in Observe) and two more fill it; the fourth does not fit.
		for i := range 4 {
			at := now.Add(time.Duration(i-3) * 15 * time.Second)
			if err := exp.ConsumeMetrics(context.Background(), batch(start, at, pmetric.AggregationTemporalityCumulative, counts(9), 18, int64(i+1), 0)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("export while the heatmap is busy: %v, want success (the store's answer stands)", err)
		}
	case <-time.After(30 * time.Second): // failsafe only: before the fix this hung
		close(st.gate)
		t.Fatal("exports waited for a busy heatmap")
	}
	failed, err := tel.GetMetric("otelcol_exporter_enqueue_failed_metric_points")
	if err != nil {
		t.Fatalf("no count of dropped points: %v", err)
	}
	if n := failed.Data.(metricdata.Sum[int64]).DataPoints[0].Value; n != 3 {
		t.Errorf("otelcol_exporter_enqueue_failed_metric_points = %d, want the 3 points of the batch that did not fit", n)
	}
	close(st.gate)
	drain(t, exp)
	if err := hm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := snapshot(t, hm)["Manila|Davao|Globe|5g"]; c.Attempts != 3 {
		t.Errorf("cell attempts %g, want 3: the three queued batches applied in order", c.Attempts)
	}
}

// BenchmarkAckLatency measures what a probe's acknowledgement waits for:
// the store's export followed, as the collector's fan-out runs its
// exporters one after the other, by the heatmap's, while the heatmap
// serves 10,000 cells and ticks every second (its collect holds the
// aggregation). Sub-benchmarks: the store alone, the heatmap exporter
// without the queue (as it was), and as configured. Reports p50, p99 and
// max of one request (20 points of a probe uplink) in ns.
func BenchmarkAckLatency(b *testing.B) {
	for _, mode := range []string{"tsdb", "tsdb+heatmap-sync", "tsdb+heatmap-queued"} {
		b.Run(mode, func(b *testing.B) {
			s, err := store.Open(store.DefaultConfig(b.TempDir()), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			hm, err := heatmap.New(heatmap.Config{Aggregation: aggregate.Config{MaxCells: 20000}, Hub: hub.Config{}}, prometheus.NewRegistry(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer hm.Close()
			now := time.Now()
			fillCells(hm, 10000, now)
			if err := hm.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			host := hosttest.With(&hosttest.Provider{TSDB: s, Map: hm})
			chain := []consumer.Metrics{startBench(b, tsdbexporter.NewFactory(), nil, host)}
			switch mode {
			case "tsdb+heatmap-sync":
				cfg := createDefaultConfig().(*Config)
				cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
				chain = append(chain, startBench(b, NewFactory(), cfg, host))
			case "tsdb+heatmap-queued":
				chain = append(chain, startBench(b, NewFactory(), nil, host))
			}
			// total is the whole acknowledgement; step is the heatmap's part of it.
			total := make([]time.Duration, 0, 1<<12)
			step := make([]time.Duration, 0, 1<<12)
			start := now.Add(-time.Minute)
			i := 0
			for b.Loop() {
				md := probeBatch(i%500, start, now.Add(time.Duration(i/500)*15*time.Second), i/500)
				t := time.Now()
				var mid time.Time
				for j, c := range chain {
					if j == 1 {
						mid = time.Now()
					}
					if err := c.ConsumeMetrics(context.Background(), md); err != nil {
						b.Fatal(err)
					}
				}
				end := time.Now()
				total = append(total, end.Sub(t))
				if !mid.IsZero() {
					step = append(step, end.Sub(mid))
				}
				i++
			}
			report(b, "ack", total)
			report(b, "heatmap", step)
		})
	}
}

// report adds the p50, p99 and max of lat (ns) as metrics named after what.
func report(b *testing.B, what string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))]) }
	b.ReportMetric(q(0.5), what+"-p50-ns")
	b.ReportMetric(q(0.99), what+"-p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1]), what+"-max-ns")
}

func startBench(b *testing.B, f exporter.Factory, cfg component.Config, host component.Host) exporter.Metrics {
	if cfg == nil {
		cfg = f.CreateDefaultConfig()
	}
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := exp.Start(context.Background(), host); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// fillCells gives the heatmap n live cells, so each broadcast tick's
// collect has real work.
func fillCells(hm *heatmap.Heatmap, n int, now time.Time) {
	c := make([]uint64, len(aggregate.DefaultBounds)+1)
	c[9] = 5
	for i := range n {
		k := "fill" + strconv.Itoa(i)
		p := aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte(k), Start: now.Add(-time.Minute), Time: now,
			Bounds: aggregate.DefaultBounds, Counts: c, Sum: 100, Delta: true}
		p.Cell.SrcCity, p.Cell.DstCity, p.Cell.Carrier, p.Cell.NetworkType = "Src"+strconv.Itoa(i/100), "Dst"+strconv.Itoa(i%100), "Globe", "4g"
		hm.Observe(&p)
	}
}

// probeBatch is one uplink's export as citytag leaves it: 20 targets'
// cumulative latency histograms, round r of probe p.
func probeBatch(p int, start, at time.Time, r int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	id := fmt.Sprintf("probe-%03d", p)
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", id)
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(metricmodel.Latency)
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for t := range 20 {
		dp := h.DataPoints().AppendEmpty()
		a := dp.Attributes()
		a.PutStr("src_city", "Src"+strconv.Itoa(p%100))
		a.PutStr("dst_city", "Dst"+strconv.Itoa(t))
		a.PutStr("carrier", "Smart")
		a.PutStr("network_type", "5g")
		a.PutStr("probe", id)
		a.PutStr("target", "t"+strconv.Itoa(t))
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.ExplicitBounds().FromRaw(bounds)
		c := make([]uint64, len(bounds)+1)
		c[9] = uint64(5 * (r + 1))
		dp.BucketCounts().FromRaw(c)
		dp.SetCount(c[9])
		dp.SetSum(18 * float64(c[9]))
	}
	return md
}
