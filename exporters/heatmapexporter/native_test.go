package heatmapexporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/internal/store"
)

// sdkProbe is one probe's OTel SDK with the probe's latency views
// (probes/agent/recording.go): the classic explicit buckets, the base-2
// exponential histogram network.latency.native, or both.
type sdkProbe struct {
	id     string
	reader *sdkmetric.ManualReader
	hist   metric.Float64Histogram
	attrs  metric.MeasurementOption
	rng    *rand.Rand
	meanMs float64
}

func newSDKProbe(t *testing.T, id, src string, classic, native bool, meanMs float64) *sdkProbe {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	opts := []sdkmetric.Option{sdkmetric.WithReader(reader), sdkmetric.WithResource(resource.NewSchemaless(
		attribute.String("service.name", "bantay-probe"), attribute.String("service.instance.id", id)))}
	latency := sdkmetric.Instrument{Name: metricmodel.Latency}
	if classic {
		opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(latency, sdkmetric.Stream{
			Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: metricmodel.LatencyBounds}})))
	}
	if native {
		opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(latency, sdkmetric.Stream{
			Name:        metricmodel.LatencyNative,
			Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: metricmodel.LatencyNativeMaxBuckets, MaxScale: 8}})))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h, err := mp.Meter(metricmodel.ScopeName).Float64Histogram(metricmodel.Latency, metric.WithUnit("ms"))
	if err != nil {
		t.Fatal(err)
	}
	// The labels citytag would have set, and the probe's own.
	attrs := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("src_city", src), attribute.String("dst_city", "Davao"), attribute.String("carrier", "Globe"),
		attribute.String("network_type", "5g"), attribute.String("probe", id), attribute.String("target", "dvo-refl"),
		attribute.String("method", "udp")))
	return &sdkProbe{id: id, reader: reader, hist: h, attrs: attrs, rng: rand.New(rand.NewPCG(uint64(len(id)), uint64(meanMs))), meanMs: meanMs}
}

// round records n answers (log-normal around the probe's mean, as a real
// path's spread), collects, and stamps the points as measured at `at` by a
// probe started at `start` (the SDK's own clock would make the test take
// as long as the history it builds).
func (p *sdkProbe) round(t *testing.T, n int, start, at time.Time) *metricdata.ResourceMetrics {
	t.Helper()
	for range n {
		p.hist.Record(context.Background(), p.meanMs*math.Exp(0.35*p.rng.NormFloat64()), p.attrs)
	}
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for i := range d.DataPoints {
					d.DataPoints[i].StartTime, d.DataPoints[i].Time = start, at
				}
			case metricdata.ExponentialHistogram[float64]:
				for i := range d.DataPoints {
					d.DataPoints[i].StartTime, d.DataPoints[i].Time = start, at
				}
			}
		}
	}
	return &rm
}

// otlpSink receives what the SDK's OTLP/HTTP exporter sends, as the
// collector's receiver decodes it.
type otlpSink struct {
	mu  sync.Mutex
	got []pmetric.Metrics
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := pmetricotlp.NewExportRequest()
	if err == nil {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.got = append(s.got, req.Metrics())
	s.mu.Unlock()
	out, _ := pmetricotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpSink) take() pmetric.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.got[len(s.got)-1]
	s.got = nil
	return md
}

type statCell struct {
	ID    string   `json:"id"`
	Count uint64   `json:"count"`
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	P99   *float64 `json:"p99"`
	Mean  *float64 `json:"mean"`
}

func statCells(t *testing.T, hm *heatmap.Heatmap) map[string]statCell {
	t.Helper()
	rec := httptest.NewRecorder()
	hm.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, hub.PathSnapshot, nil))
	var s struct {
		Cells []statCell `json:"cells"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, rec.Body.String())
	}
	out := map[string]statCell{}
	for _, c := range s.Cells {
		out[c.ID] = c
	}
	return out
}

func drillBounds(t *testing.T, hm *heatmap.Heatmap, id string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	hm.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, hub.PathDrilldown+"?cell="+url.QueryEscape(id), nil))
	var d struct {
		Bounds []float64 `json:"bounds"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatalf("drilldown: %v\n%s", err, rec.Body.String())
	}
	return len(d.Bounds)
}

func promScalar(t *testing.T, st *store.Store, q string, at time.Time) float64 {
	t.Helper()
	qry, err := st.Engine().NewInstantQuery(context.Background(), st.DB(), nil, q, at)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	v, err := res.Vector()
	if err != nil || len(v) != 1 {
		t.Fatalf("%s: %v %v", q, v, err)
	}
	return v[0].F
}

// TestNativeCellsEqualHistogramQuantileOnTheStoredNativeSeries runs the
// OTel SDK with the probe's views through its OTLP exporter into the real
// heatmap exporter and the real store, and compares the cells with
// Prometheus's histogram_quantile over what the store holds, live and
// after a rebuild from it.
//
// The bound: Prometheus locates the rank in the stored histogram's buckets
// (the SDK's scale, 3 or finer: asserted) and interpolates inside one; the
// cell locates the same rank in its scale-3 buckets, each the union of
// whole finer buckets, so the cumulative counts at its boundaries are the
// same and the finer bucket lies inside the cell's. Both values are in one
// bucket (2^(k/8), 2^((k+1)/8)]: their ratio is at most 2^(1/8), and the
// cell rounds to 1 µs.
func TestNativeCellsEqualHistogramQuantileOnTheStoredNativeSeries(t *testing.T) {
	st, err := store.Open(store.DefaultConfig(t.TempDir()), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	hm, err := heatmap.New(heatmap.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hm.Close() })
	exp := startExporter(t, hm)

	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	otlp, err := otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(srv.URL+"/v1/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	probes := []*sdkProbe{
		newSDKProbe(t, "mnl-01", "Manila", true, true, 28),  // recording.histograms: both
		newSDKProbe(t, "mnl-02", "Manila", false, true, 35), // exponential
		newSDKProbe(t, "bag-01", "Baguio", true, false, 22), // classic
	}
	const rounds, perRound = 12, 5
	now := time.Now()
	start := now.Add(-time.Hour) // long running: the first point is each stream's base, live and rebuilt
	first := now.Add(-(rounds + 1) * 15 * time.Second)
	minScale := int32(math.MaxInt32)
	for i := range rounds + 1 {
		at := first.Add(time.Duration(i) * 15 * time.Second)
		for _, p := range probes {
			if err := otlp.Export(context.Background(), p.round(t, perRound, start, at)); err != nil {
				t.Fatal(err)
			}
			md := sink.take()
			for _, m := range allMetrics(md) {
				if m.Type() == pmetric.MetricTypeExponentialHistogram {
					minScale = min(minScale, m.ExponentialHistogram().DataPoints().At(0).Scale())
				}
			}
			stored := pmetric.NewMetrics()
			md.CopyTo(stored)
			if err := st.AppendMetrics(context.Background(), stored); err != nil {
				t.Fatal(err)
			}
			if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain(t, exp)
	if minScale < aggregate.NativeScale {
		t.Fatalf("the SDK used scale %d: the bound below assumes %d or finer", minScale, aggregate.NativeScale)
	}
	if err := hm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	live := statCells(t, hm)

	const nativeID, classicID = "Manila|Davao|Globe|5g", "Baguio|Davao|Globe|5g"
	firstAt := fmt.Sprintf("%.3f", float64(first.UnixMilli())/1000)
	sel := func(name, src string) string {
		s := fmt.Sprintf(`%s{src_city=%q,dst_city="Davao",carrier="Globe",network_type="5g",phase=""}`, name, src)
		return s + " - " + s + " @ " + firstAt // the increase since each stream's base
	}
	evalAt := time.Now()
	bound := math.Exp2(1.0 / (1 << aggregate.NativeScale))
	nc := live[nativeID]
	// Both Manila probes' answers after their base, each counted once
	// (mnl-01 sends every one twice: classic and native).
	if want := uint64(2 * rounds * perRound); nc.Count != want {
		t.Errorf("native cell: %d samples, want %d", nc.Count, want)
	}
	if got := promScalar(t, st, "sum(histogram_count(sum("+sel("network_latency_native_milliseconds", "Manila")+")))", evalAt); uint64(got) != nc.Count {
		t.Errorf("native cell: %d samples, the store's native series %g", nc.Count, got)
	}
	for _, q := range []struct {
		q    float64
		cell *float64
	}{{0.5, nc.P50}, {0.9, nc.P90}, {0.99, nc.P99}} {
		want := promScalar(t, st, fmt.Sprintf("histogram_quantile(%g, sum(%s))", q.q, sel("network_latency_native_milliseconds", "Manila")), evalAt)
		if q.cell == nil || *q.cell > want*bound+0.0005 || *q.cell < want/bound-0.0005 {
			t.Errorf("native cell p%g = %s, histogram_quantile on the native series %g: beyond a factor of %.4f", q.q*100, fmtNum(q.cell), want, bound)
		} else {
			t.Logf("native cell p%g = %g, histogram_quantile %g (ratio %.4f, bound %.4f)", q.q*100, *q.cell, want, *q.cell/want, bound)
		}
	}
	// A path with classic buckets only is what it always was: exactly the
	// classic histogram_quantile.
	cc := live[classicID]
	for _, q := range []struct {
		q    float64
		cell *float64
	}{{0.5, cc.P50}, {0.9, cc.P90}, {0.99, cc.P99}} {
		want := promScalar(t, st, fmt.Sprintf("histogram_quantile(%g, sum by (le) (%s))", q.q, sel("network_latency_milliseconds_bucket", "Baguio")), evalAt)
		if q.cell == nil || *q.cell != math.Round(want*1000)/1000 {
			t.Errorf("classic cell p%g = %s, histogram_quantile %g", q.q*100, fmtNum(q.cell), want)
		}
	}
	if n := drillBounds(t, hm, nativeID); n != aggregate.NativeBuckets {
		t.Errorf("native cell's drill-down has %d bounds, want the native layout's %d", n, aggregate.NativeBuckets)
	}
	if n := drillBounds(t, hm, classicID); n != len(metricmodel.LatencyBounds) {
		t.Errorf("classic cell's drill-down has %d bounds, want %d", n, len(metricmodel.LatencyBounds))
	}

	// A restart: the same cells from the store.
	hm2, err := heatmap.New(heatmap.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hm2.Close() })
	if err := hm2.StartRebuild(st.DB()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); hm2.Rebuilding(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the rebuild did not end within a minute")
		}
	}
	if err := hm2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rebuilt := statCells(t, hm2)
	for _, id := range []string{nativeID, classicID} {
		l, r := live[id], rebuilt[id]
		if l.Count != r.Count || !sameNum(l.P50, r.P50) || !sameNum(l.P90, r.P90) || !sameNum(l.P99, r.P99) || !sameNum(l.Mean, r.Mean) {
			t.Errorf("%s live %s, rebuilt %s", id, fmtCell(l), fmtCell(r))
		}
	}
	if n := drillBounds(t, hm2, nativeID); n != aggregate.NativeBuckets {
		t.Errorf("rebuilt native cell's drill-down has %d bounds, want %d", n, aggregate.NativeBuckets)
	}
}

func allMetrics(md pmetric.Metrics) []pmetric.Metric {
	var out []pmetric.Metric
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			for k := 0; k < sms.At(j).Metrics().Len(); k++ {
				out = append(out, sms.At(j).Metrics().At(k))
			}
		}
	}
	return out
}

func sameNum(a, b *float64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func fmtNum(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

func fmtCell(c statCell) string {
	f := fmtNum
	return fmt.Sprintf("{count %d p50 %s p90 %s p99 %s mean %s}", c.Count, f(c.P50), f(c.P90), f(c.P99), f(c.Mean))
}
