// Package tsdbexporter implements the `tsdb` exporter: it appends metrics to
// the embedded Prometheus TSDB owned by the `bantay` extension, through
// Prometheus's own OTLP translator, and returns only once they are committed
// to the WAL. It has no sending queue and no retry on purpose: the OTLP
// receiver's answer to the probe is this exporter's answer, so an
// acknowledged point is a stored point and an overloaded store tells the
// probe to retry (RESOURCE_EXHAUSTED / HTTP 429) instead of queueing in memory.
package tsdbexporter

//go:generate mdatagen metadata.yaml

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/bantay-noc/bantay/exporters/tsdbexporter/internal/metadata"
)

// NewFactory returns the tsdb exporter factory.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	return &Config{Extension: component.MustNewID("bantay")}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	e := &tsdbExporter{cfg: cfg.(*Config)}
	// No WithQueue and no WithRetry: synchronous by design (see package doc).
	return exporterhelper.NewMetrics(ctx, set, cfg, e.push,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}))
}
