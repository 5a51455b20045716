// Package heatmapexporter is a collector exporter that tees the pipeline's
// metrics into Bantay's live heatmap, and its event log records into the
// heatmap's event feed (package heatmap), which the collector's
// bantay extension owns and serves at /ws.
package heatmapexporter

//go:generate mdatagen metadata.yaml

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

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

// DefaultQueueSize is the sending queue's bound in data points (metrics)
// or log records: about a second of a large fleet's points, so only a
// heatmap that stalls for longer than that drops any.
const DefaultQueueSize = 50_000

func createDefaultConfig() component.Config {
	q := exporterhelper.NewDefaultQueueConfig()
	q.Sizer = exporterhelper.RequestSizerTypeItems
	q.QueueSize = DefaultQueueSize
	q.NumConsumers = 1
	return &Config{Extension: defaultExtension, QueueConfig: configoptional.Some(q)}
}

// createMetrics builds the exporter behind a sending queue without
// retries: the heatmap is in memory, so a push cannot fail for a reason a
// retry would cure, and the queue keeps the broadcast tick (which holds
// the aggregation while it collects) off the acknowledgement path.
func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	e := newExporter(c, set)
	inner, err := exporterhelper.NewMetrics(ctx, set, cfg, e.pushMetrics,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithQueue(c.QueueConfig),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
	if err != nil {
		return nil, err
	}
	return queuedMetrics{inner}, nil
}

// createLogs builds the logs side: event records become feed entries
// (heatmap.PublishEvents), queued for the same reason as metrics (the
// failure_events connector produces them on the metrics pipeline).
func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	e := newExporter(c, set)
	inner, err := exporterhelper.NewLogs(ctx, set, cfg, e.pushLogs,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithQueue(c.QueueConfig),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
	if err != nil {
		return nil, err
	}
	return queuedLogs{inner}, nil
}

// queuedMetrics and queuedLogs answer a full queue with success: the
// heatmap is a live view, not a store, so what does not fit is dropped —
// counted by exporterhelper (otelcol_exporter_enqueue_failed_*) — and the
// pipeline's answer to the sender stays the store's. Returning the error
// would fail the probe's request although its points are stored.
type queuedMetrics struct{ exporter.Metrics }

func (q queuedMetrics) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	return dropWhenFull(q.Metrics.ConsumeMetrics(ctx, md))
}

type queuedLogs struct{ exporter.Logs }

func (q queuedLogs) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return dropWhenFull(q.Logs.ConsumeLogs(ctx, ld))
}

func dropWhenFull(err error) error {
	if errors.Is(err, exporterhelper.ErrQueueIsFull) {
		return nil
	}
	return err
}
