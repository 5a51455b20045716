package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// benchRequest is one probe export: series latency histograms (28 bounds,
// as the probes send) on one resource, encoded as the OTLP wire bytes.
// With exemplars, every point carries one as the probes' OpenTelemetry SDK
// writes it for a round's slowest answer: trace and span id, no attributes.
func benchRequest(b *testing.B, series int, ts time.Time, exemplars bool) []byte {
	b.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("network.latency")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	bounds := []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}
	counts := make([]uint64, len(bounds)+1)
	counts[10], counts[11] = 3, 1
	for i := range series {
		dp := h.DataPoints().AppendEmpty()
		for k, v := range map[string]string{"src_city": "Manila", "dst_city": "Davao", "carrier": "Globe", "network_type": "5g", "region": "NCR", "island_group": "Luzon"} {
			dp.Attributes().PutStr(k, v)
		}
		dp.Attributes().PutStr("target", fmt.Sprintf("target-%d", i))
		dp.ExplicitBounds().FromRaw(bounds)
		dp.BucketCounts().FromRaw(counts)
		dp.SetCount(4)
		dp.SetSum(90)
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Hour)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		if exemplars {
			ex := dp.Exemplars().AppendEmpty()
			ex.SetDoubleValue(23.5)
			ex.SetTimestamp(dp.Timestamp())
			ex.SetTraceID(pcommon.TraceID{0: byte(i), 1: byte(i >> 8), 15: 1})
			ex.SetSpanID(pcommon.SpanID{0: byte(i), 7: 1})
		}
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkIngest compares Bantay's append path with Prometheus's own OTLP
// write handler (the code behind Prometheus's native OTLP ingestion) over
// the same TSDB options, in the same run: decode the OTLP bytes, translate,
// append, commit to the WAL. Each iteration is one request of 100 series
// (3,100 samples) with a new timestamp. "bantay" is the store as it runs
// (from the second request on, every stream is in the series cache);
// "bantay-translator" is the same store with the cache never answering, so
// every request goes through Prometheus's translator; "-exemplars" is the
// same with one exemplar on every point, as the probes send in production.
// See docs/BENCHMARKS.md.
func BenchmarkIngest(b *testing.B) {
	const series = 100
	start := time.Now().Add(-time.Hour)
	bodies := func(b *testing.B, exemplars bool) [][]byte {
		out := make([][]byte, b.N)
		for i := range out {
			out[i] = benchRequest(b, series, start.Add(time.Duration(i)*time.Millisecond), exemplars)
		}
		return out
	}
	for _, bc := range []struct {
		name              string
		cached, exemplars bool
	}{
		{"bantay", true, false},
		{"bantay-translator", false, false},
		{"bantay-exemplars", true, true},
		{"bantay-translator-exemplars", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(DefaultConfig(b.TempDir()), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if !bc.cached {
				s.series.gen = math.MaxUint64 // no DB has this generation: nothing is cached
			}
			reqs := bodies(b, bc.exemplars)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				req := pmetricotlp.NewExportRequest()
				if err := req.UnmarshalProto(reqs[i]); err != nil {
					b.Fatal(err)
				}
				if err := s.AppendMetrics(context.Background(), req.Metrics()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*series)/b.Elapsed().Seconds(), "points/s")
		})
	}
	b.Run("prometheus-otlp-handler", func(b *testing.B) {
		s, err := Open(DefaultConfig(b.TempDir()), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		h := remote.NewOTLPWriteHandler(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), s.DB(),
			func() config.Config { return config.DefaultConfig }, remote.OTLPOptions{LookbackDelta: 5 * time.Minute})
		reqs := bodies(b, false)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/otlp/v1/metrics", bytes.NewReader(reqs[i]))
			r.Header.Set("Content-Type", "application/x-protobuf")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("prometheus handler: %d %s", w.Code, w.Body)
			}
		}
		b.ReportMetric(float64(b.N*series)/b.Elapsed().Seconds(), "points/s")
	})
}

// BenchmarkRestart measures how long Open takes on a store holding 30
// minutes of 1,000 probe histograms (31,000 series, 120 requests 15 s
// apart, 3.7 M samples): after a clean shutdown, which leaves the memory
// snapshot, and after a crash, simulated by deleting the snapshot, which
// leaves the whole WAL to replay. See docs/RELIABILITY.md.
func BenchmarkRestart(b *testing.B) {
	const series, requests = 1000, 120
	dir := b.TempDir()
	s, err := Open(DefaultConfig(dir), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(-30 * time.Minute)
	for i := range requests {
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(benchRequest(b, series, start.Add(time.Duration(i)*15*time.Second), false)); err != nil {
			b.Fatal(err)
		}
		if err := s.AppendMetrics(context.Background(), req.Metrics()); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		before func() error
	}{
		{"snapshot", func() error { return nil }},
		{"wal-replay", func() error { return tsdb.DeleteChunkSnapshots(dir, math.MaxInt, math.MaxInt) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if err := bc.before(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s, err := Open(DefaultConfig(dir), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Close(); err != nil { // writes the next snapshot
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
