// Package failureeventsconnector is a collector connector (type
// failure_events) from the metrics pipeline to the logs pipeline: it reads
// the probes' cumulative bantay.probe.failures counters (after citytag has
// placed them), derives the new failures per stream, and folds them into
// one probe_failure event per failure burst rather than one per sample
// (docs/events.md). It never slows or fails the metrics pipeline: events
// are handed to the logs pipeline from a goroutine of its own through a
// bounded queue whose overflow is dropped and counted.
package failureeventsconnector

//go:generate mdatagen metadata.yaml

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector/internal/metadata"
)

// NewFactory returns the factory of the failure_events connector.
func NewFactory() connector.Factory {
	return connector.NewFactory(metadata.Type, createDefaultConfig,
		connector.WithMetricsToLogs(createMetricsToLogs, metadata.MetricsToLogsStability))
}

func createMetricsToLogs(_ context.Context, set connector.Settings, c component.Config, next consumer.Logs) (connector.Metrics, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, errors.New("failure_events connector: unexpected config type")
	}
	return newConnector(cfg, set, next)
}
