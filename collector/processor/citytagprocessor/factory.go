// Package citytagprocessor implements the `citytag` processor: the
// collector's authority for where a latency measurement was taken and where
// it went. It replaces what probes say about themselves with canonical
// labels from a probe registry and a gazetteer of Philippine cities, and
// rejects, with a counted reason, whatever it cannot place: the rest goes
// on, and the sender gets a permanent InvalidArgument naming what was
// rejected (refusal.go).
package citytagprocessor

//go:generate mdatagen metadata.yaml

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/collector/sharedstate"
)

// NewFactory returns the citytag processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithMetrics(createMetrics, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		Extension:    sharedstate.DefaultID,
		MaxLatencyMs: 60_000,
		LogInterval:  time.Minute,
		Limits: LimitsConfig{
			MaxSeriesPerProbe:       60_000,
			SeriesIdle:              time.Hour,
			MaxPointAttributes:      16,
			MaxAttributeNameLength:  128,
			MaxAttributeValueLength: 256,
		},
		// Together the store's default out_of_order_window, 30m (timestamps.go).
		Timestamps: TimestampsConfig{MaxAhead: 5 * time.Minute, MaxAge: 25 * time.Minute},
	}
}

func createMetrics(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	p, _, err := newProcessor(ctx, set, cfg.(*Config), next)
	return p, err
}

func newProcessor(ctx context.Context, set processor.Settings, cfg *Config, next consumer.Metrics) (processor.Metrics, *cityTagger, error) {
	tagger, err := newCityTagger(set, cfg)
	if err != nil {
		return nil, nil, err
	}
	helper, err := processorhelper.NewMetrics(ctx, set, cfg, forwarder{next}, tagger.processMetrics,
		processorhelper.WithStart(tagger.startFunc(set.ID, cfg.Extension)),
		processorhelper.WithShutdown(tagger.shutdown),
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
	if err != nil {
		return nil, nil, err
	}
	return refusingProcessor{helper}, tagger, nil
}
