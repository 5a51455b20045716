// Package bantayeventsreceiver is a collector logs receiver (type
// bantay_events) that turns events produced inside the collector into log
// records for the events pipeline: the heatmap's path state changes
// (degraded, recovered, stale, back) and what the collector publishes on
// its event bus (probes rejected by citytag, rules reloaded). It finds both
// on the bantay extension at Start (docs/events.md).
package bantayeventsreceiver

//go:generate mdatagen metadata.yaml

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/bantay-noc/bantay/collector/receiver/bantayeventsreceiver/internal/metadata"
)

// NewFactory returns the factory of the bantay_events receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithLogs(createLogs, metadata.LogsStability))
}

func createLogs(_ context.Context, set receiver.Settings, c component.Config, next consumer.Logs) (receiver.Logs, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, errors.New("bantay_events receiver: unexpected config type")
	}
	return newReceiver(cfg, set, next)
}
