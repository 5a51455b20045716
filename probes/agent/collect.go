package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// exportLoop collects an uplink's measurements every export interval and
// exports them: what the SDK's PeriodicReader does, but into one
// ResourceMetrics kept from collection to collection. The PeriodicReader
// erases its ResourceMetrics after each export, so every collection made
// every point's slices afresh — above all the exemplar slices, one per
// point and as long as its reservoir, most of them empty: with 1,000 targets
// that was about two fifths of what the probe allocated (docs/BENCHMARKS.md,
// "Probe footprint"). Collected into the same ResourceMetrics, the SDK
// reuses those slices.
type exportLoop struct {
	reader   *sdkmetric.ManualReader
	exporter sdkmetric.Exporter
	interval time.Duration
	timeout  time.Duration

	mu sync.Mutex // one collection at a time: rm is shared
	rm metricdata.ResourceMetrics
}

// newExportLoop returns the loop and the reader to register with the
// MeterProvider; temporality and aggregation are the exporter's, as a
// PeriodicReader takes them.
func newExportLoop(exp sdkmetric.Exporter, interval, timeout time.Duration) *exportLoop {
	return &exportLoop{
		reader: sdkmetric.NewManualReader(
			sdkmetric.WithTemporalitySelector(exp.Temporality),
			sdkmetric.WithAggregationSelector(exp.Aggregation)),
		exporter: exp,
		interval: interval,
		timeout:  timeout,
	}
}

// run exports every interval until ctx is done; an export under way then
// sees its context cancelled, as a PeriodicReader's does at Shutdown.
func (l *exportLoop) run(ctx context.Context) {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			cctx, cancel := context.WithTimeout(ctx, l.timeout)
			if err := l.export(cctx); err != nil && ctx.Err() == nil {
				otel.Handle(err) // where a PeriodicReader reports it
			}
			cancel()
		}
	}
}

// export collects once and exports what it collected.
func (l *exportLoop) export(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.reader.Collect(ctx, &l.rm); err != nil {
		return err
	}
	return l.exporter.Export(ctx, &l.rm)
}

// flush exports once more with ctx (run must have returned) and shuts the
// exporter down: a PeriodicReader's Shutdown, but for the reader itself,
// which the MeterProvider's Shutdown shuts.
func (l *exportLoop) flush(ctx context.Context) error {
	return errors.Join(l.export(ctx), l.exporter.Shutdown(ctx))
}
