package failureeventsconnector

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector/internal/metadata"
)

// BenchmarkConsumeMetrics measures what the connector adds to the metrics
// pipeline per export batch: 100 probes, each with its attempts series and
// six failure series (one per reason), 1 of them failing.
func BenchmarkConsumeMetrics(b *testing.B) {
	c, err := NewFactory().CreateMetricsToLogs(context.Background(), connectortest.NewNopSettings(metadata.Type),
		createDefaultConfig(), &consumertest.LogsSink{})
	if err != nil {
		b.Fatal(err)
	}
	batch := func(i int) pmetric.Metrics {
		md := pmetric.NewMetrics()
		at := t0.Add(time.Duration(i) * 15 * time.Second)
		for p := range 100 {
			for r, reason := range []string{"timeout", "refused", "dns", "tls", "http_status", "other"} {
				s := dvoTimeout
				s.probe = fmt.Sprintf("p-%03d", p)
				s.reason = reason
				v := 0.0
				if r == 0 {
					v = float64(i) // one failure per export: a burst that never ends
				}
				appendFailures(md, s, at, v)
			}
		}
		return md
	}
	batches := make([]pmetric.Metrics, 64)
	for i := range batches {
		batches[i] = batch(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Replaying the 64 exports in a loop makes most points duplicates
		// or late after the first round; both take the same lookups.
		_ = c.ConsumeMetrics(context.Background(), batches[i%len(batches)])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1200, "ns/point")
}

// BenchmarkConsumeMetricsParallel is many probes' exports arriving at once,
// as the OTLP receiver hands them over from concurrent requests: one probe
// per export (its attempts and six failure series), each goroutine its own
// probes.
func BenchmarkConsumeMetricsParallel(b *testing.B) {
	c, err := NewFactory().CreateMetricsToLogs(context.Background(), connectortest.NewNopSettings(metadata.Type),
		createDefaultConfig(), &consumertest.LogsSink{})
	if err != nil {
		b.Fatal(err)
	}
	exports := make([]pmetric.Metrics, 1024)
	for p := range exports {
		md := pmetric.NewMetrics()
		for _, reason := range []string{"timeout", "refused", "dns", "tls", "http_status", "other"} {
			s := dvoTimeout
			s.probe = fmt.Sprintf("p-%04d", p)
			s.reason = reason
			appendFailures(md, s, t0, 0)
		}
		exports[p] = md
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = c.ConsumeMetrics(context.Background(), exports[next.Add(1)%int64(len(exports))])
		}
	})
}
