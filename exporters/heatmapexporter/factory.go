// Package heatmapexporter is a collector exporter that tees the pipeline's
// metrics into Bantay's live heatmap, and its event log records into the
// heatmap's event feed (package heatmap), which the collector's
// bantay extension owns and serves at /ws.
package heatmapexporter

//go:generate mdatagen metadata.yaml

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/bantay-noc/bantay/exporters/heatmapexporter/internal/metadata"
)

// defaultExtension is the extension that owns the heatmap in Bantay's distribution.
var defaultExtension = component.MustNewID("bantay")

// NewFactory returns the factory of the "heatmap" exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability),
		exporter.WithLogs(createLogs, metadata.LogsStability))
}

func createDefaultConfig() component.Config {
	return &Config{Extension: defaultExtension}
}

// createMetrics builds the exporter without a sending queue or retries:
// the heatmap is in memory and fast, so the push is synchronous and a
// failure is reported to the pipeline at once.
func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	e := newExporter(cfg.(*Config), set)
	return exporterhelper.NewMetrics(ctx, set, cfg, e.pushMetrics,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
}

// createLogs builds the logs side: event records become feed entries
// (heatmap.PublishEvents), synchronously for the same reason as metrics.
func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	e := newExporter(cfg.(*Config), set)
	return exporterhelper.NewLogs(ctx, set, cfg, e.pushLogs,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
}
