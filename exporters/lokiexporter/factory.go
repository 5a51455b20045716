// Package lokiexporter is a collector exporter that pushes Bantay's events
// (OTLP log records) to Grafana Loki's push API as snappy-compressed
// protobuf built from Loki's own push types. Labels are a short allow-list
// of bounded attributes; everything else goes to structured metadata and a
// JSON line. A per-source rate limit sits in front of exporterhelper's
// bounded, non-blocking queue, which sits in front of retry with backoff.
package lokiexporter

//go:generate mdatagen metadata.yaml

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/bantay-noc/bantay/exporters/lokiexporter/internal/metadata"
)

// NewFactory returns the factory of the loki exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithLogs(createLogs, metadata.LogsStability))
}

func createDefaultConfig() component.Config {
	client := confighttp.NewDefaultClientConfig()
	client.Timeout = DefaultTimeout

	queue := exporterhelper.NewDefaultQueueConfig()
	// Count the bound in events, not requests, so that it means the same
	// whatever the producers' batch sizes.
	queue.Sizer = exporterhelper.RequestSizerTypeItems
	queue.QueueSize = DefaultQueueSize
	queue.NumConsumers = DefaultNumConsumers
	batch := exporterhelper.NewDefaultBatchConfig()
	batch.FlushTimeout = time.Second
	batch.Sizer = exporterhelper.RequestSizerTypeItems
	batch.MinSize = 100
	batch.MaxSize = DefaultBatchMaxSize
	queue.Batch = configoptional.Some(batch)

	retry := configretry.NewDefaultBackOffConfig()
	retry.InitialInterval = time.Second
	retry.MaxInterval = 30 * time.Second
	// Long enough to ride out a Loki restart or a short WAN outage; the
	// queue bound, not this, limits memory.
	retry.MaxElapsedTime = 15 * time.Minute

	return &Config{
		ClientConfig:  client,
		QueueConfig:   configoptional.Some(queue),
		BackOffConfig: retry,
		Labels:        defaultLabels(),
		RateLimit: RateLimitConfig{
			Enabled:         true,
			Key:             "probe",
			EventsPerMinute: 6,
			Burst:           10,
			SummaryInterval: time.Minute,
			MaxSources:      10_000,
		},
	}
}

func createLogs(ctx context.Context, set exporter.Settings, c component.Config) (exporter.Logs, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, errors.New("loki exporter: unexpected config type")
	}
	tel, err := newTelemetry(set)
	if err != nil {
		return nil, err
	}
	p, err := newPusher(cfg, set, tel)
	if err != nil {
		return nil, err
	}
	inner, err := exporterhelper.NewLogs(ctx, set, cfg, p.push,
		exporterhelper.WithStart(p.start),
		// The HTTP client's timeout bounds each attempt.
		exporterhelper.WithTimeout(exporterhelper.TimeoutConfig{Timeout: 0}),
		exporterhelper.WithQueue(cfg.QueueConfig),
		exporterhelper.WithRetry(cfg.BackOffConfig),
	)
	if err != nil {
		return nil, err
	}
	e := &lokiExporter{Logs: inner, logger: set.Logger, tel: tel, now: time.Now}
	if q := cfg.QueueConfig.Get(); q != nil && q.Sizer == exporterhelper.RequestSizerTypeItems {
		e.queueEvents = q.QueueSize
	}
	if cfg.RateLimit.Enabled {
		e.limiter = newLimiter(cfg.RateLimit)
		e.keyAttr = cfg.RateLimit.Key
		for _, l := range cfg.Labels {
			// The summary has its own kind; the rest of the labels put it
			// in the stream of the events it stands for.
			if l.Attribute != "event.kind" && l.Attribute != cfg.RateLimit.Key {
				e.summaryAttrs = append(e.summaryAttrs, l.Attribute)
			}
		}
	}
	return e, nil
}
