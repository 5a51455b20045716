// Package bantayeventsreceiver is a collector logs receiver (type
// bantay_events) that turns events produced inside the collector into log
// records for the events pipeline: the heatmap's path state changes
// (degraded, recovered, stale, back) and what the collector publishes on
// its event bus (probes rejected by citytag, rules reloaded). It finds both
// on the bantay extension at Start (docs/events.md).
package bantayeventsreceiver

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
)

// Type is the component type, "bantay_events".
var Type = component.MustNewType("bantay_events")

const stability = component.StabilityLevelAlpha

// NewFactory returns the factory of the bantay_events receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(Type, createDefaultConfig,
		receiver.WithLogs(createLogs, stability))
}

func createLogs(_ context.Context, set receiver.Settings, c component.Config, next consumer.Logs) (receiver.Logs, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, errors.New("bantay_events receiver: unexpected config type")
	}
	return newReceiver(cfg, set, next)
}
