package agent

import (
	"context"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
)

// nativeMaxScale is the finest scale Prometheus stores in a native
// histogram (schema 8); a finer one would only be downscaled by the
// collector's translator.
const nativeMaxScale = 8

// recordingOptions are the MeterProvider options of config.Recording:
// the latency histograms as views of the one network.latency instrument
// (so both forms see exactly the same measurements), and the exemplar
// filter pinned to trace-based (OTEL_METRICS_EXEMPLAR_FILTER=always_on
// would give every probe an exemplar and the store a flood of them): only
// what mark marks carries one.
func recordingOptions(r config.Recording) []sdkmetric.Option {
	opts := []sdkmetric.Option{sdkmetric.WithExemplarFilter(exemplar.TraceBasedFilter)}
	if !r.Exponential() {
		return opts // the instrument's own explicit buckets, as always
	}
	latency := sdkmetric.Instrument{Name: metricmodel.Latency}
	if r.Classic() {
		opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(latency, sdkmetric.Stream{
			Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: metricmodel.LatencyBounds},
		})))
	}
	return append(opts, sdkmetric.WithView(sdkmetric.NewView(latency, sdkmetric.Stream{
		Name: metricmodel.LatencyNative,
		Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{
			MaxSize: metricmodel.LatencyNativeMaxBuckets, MaxScale: nativeMaxScale,
		},
	})))
}

// markTracer gives a measurement an exemplar: mark puts a sampled span of
// its own in the context the measurement is recorded with. The spans are
// never exported (the provider has no processor), so one provider serves
// every agent; a span's trace id is what the sample's exemplar in the store,
// the collector's probe_failure event and the probe's log line share, so a
// NOC engineer can go from one to the others.
var markTracer = sync.OnceValue(func() trace.Tracer {
	// AlwaysSample, not the OTEL_TRACES_SAMPLER default: an unsampled span
	// would not pass the trace-based exemplar filter.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	return tp.Tracer(metricmodel.ScopeName)
})

// mark returns a context to record one slow or failed measurement with,
// and its trace id.
func mark(name string) (context.Context, trace.TraceID) {
	ctx, span := markTracer().Start(context.Background(), name)
	span.End()
	return ctx, span.SpanContext().TraceID()
}
