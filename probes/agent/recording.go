package agent

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
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
	for _, name := range unmarked {
		opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: name},
			sdkmetric.Stream{ExemplarReservoirProviderSelector: noExemplars})))
	}
	opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: metricmodel.Failures},
		sdkmetric.Stream{ExemplarReservoirProviderSelector: exactExemplars})))
	latency := sdkmetric.Instrument{Name: metricmodel.Latency}
	if !r.Exponential() {
		// The instrument's own explicit buckets, as always.
		return append(opts, sdkmetric.WithView(sdkmetric.NewView(latency,
			sdkmetric.Stream{ExemplarReservoirProviderSelector: exactExemplars})))
	}
	if r.Classic() {
		opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(latency, sdkmetric.Stream{
			Aggregation:                       sdkmetric.AggregationExplicitBucketHistogram{Boundaries: metricmodel.LatencyBounds},
			ExemplarReservoirProviderSelector: exactExemplars,
		})))
	}
	return append(opts, sdkmetric.WithView(sdkmetric.NewView(latency, sdkmetric.Stream{
		Name: metricmodel.LatencyNative,
		Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{
			MaxSize: metricmodel.LatencyNativeMaxBuckets, MaxScale: nativeMaxScale,
		},
		ExemplarReservoirProviderSelector: exactExemplars,
	})))
}

// unmarked are the instruments recorded only with context.Background(),
// never with mark's context: the trace-based filter lets none of their
// measurements through, so they never carry an exemplar.
var unmarked = []string{
	metricmodel.Attempts, metricmodel.Duplicates, metricmodel.Reordered,
	metricmodel.Jitter, metricmodel.JitterPairs, metricmodel.HTTPStatus,
	metricmodel.CertExpiry, metricmodel.Lateness, metricmodel.RoundsInFlight,
}

// noExemplars gives the unmarked instruments a reservoir that holds nothing
// and hands back no buffer. With the SDK's own (empty) reservoir every
// collection gave every point of a cumulative sum a new exemplar slice as
// long as the SDK's pooled buffer — 29 exemplars, about 3 KB, once the
// latency histogram's bucket-aligned reservoir has used it: 15 MB of empty
// slices per export at 1,000 targets (docs/BENCHMARKS.md, "Probe footprint").
func noExemplars(sdkmetric.Aggregation) exemplar.ReservoirProvider {
	return func(attribute.Set) exemplar.Reservoir { return emptyReservoir{} }
}

type emptyReservoir struct{}

func (emptyReservoir) Offer(context.Context, time.Time, exemplar.Value, []attribute.KeyValue) {}

// Collect leaves dest without capacity: the SDK makes the point's exemplar
// slice as long as dest's capacity, and nil costs nothing. (The buffer
// dropped here is the SDK's pooled one; the instruments that keep
// exemplars collect into one of their own, exactExemplars.)
func (emptyReservoir) Collect(dest *[]exemplar.Exemplar) { *dest = nil }

// exactExemplars is the SDK's own reservoir for the instruments that carry
// exemplars (the latency histograms and the failures counter), handing each
// point an exemplar slice exactly as long as what it holds: none, most of
// the time. The SDK makes a point's slice as long as the capacity of the
// buffer the reservoir collected into, and the latency histogram's
// bucket-aligned reservoir grows that buffer to one slot per bucket: 29
// exemplars, about 3 KB, for every histogram point of every collection —
// 3 MB of garbage per export at 1,000 targets, holding nothing
// (docs/BENCHMARKS.md, "Probe footprint"). The reservoir collects into a
// buffer of its own instead, kept per instrument rather than per series, so
// holding it costs one buffer, not one per target.
func exactExemplars(agg sdkmetric.Aggregation) exemplar.ReservoirProvider {
	sdk := sdkmetric.DefaultExemplarReservoirProviderSelector(agg)
	buf := &exemplarBuffer{}
	return func(attrs attribute.Set) exemplar.Reservoir { return exactReservoir{sdk(attrs), buf} }
}

// exemplarBuffer is what an instrument's reservoirs collect into; mu makes
// collections of two readers (OTLP and /metrics) take turns.
type exemplarBuffer struct {
	mu  sync.Mutex
	buf []exemplar.Exemplar
}

type exactReservoir struct {
	exemplar.Reservoir
	shared *exemplarBuffer
}

// Collect gives dest exactly the held exemplars (nil for none), collected
// through the shared buffer, which is then cleared so it keeps no
// attributes or trace ids alive.
func (r exactReservoir) Collect(dest *[]exemplar.Exemplar) {
	b := r.shared
	b.mu.Lock()
	defer b.mu.Unlock()
	r.Reservoir.Collect(&b.buf)
	if len(b.buf) == 0 {
		*dest = nil
		return
	}
	*dest = append(make([]exemplar.Exemplar, 0, len(b.buf)), b.buf...)
	clear(b.buf)
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
