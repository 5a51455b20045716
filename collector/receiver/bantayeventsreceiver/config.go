package bantayeventsreceiver

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Config configures the bantay_events receiver.
type Config struct {
	// Extension names the extension the events come from: one providing
	// `Heatmap() *heatmap.Heatmap` (path state changes) and/or
	// `Events() *events.Bus` (the collector's own events). Bantay's
	// "bantay" extension provides both.
	Extension component.ID `mapstructure:"extension"`
	// FlushInterval is the longest an event waits before it is handed to
	// the logs pipeline.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// MaxBatch hands events on as soon as this many are waiting.
	MaxBatch int `mapstructure:"max_batch"`
	// QueueSize bounds the heatmap events waiting for the receiver's
	// goroutine; beyond it they are dropped and counted. (Bus events wait
	// in the bus's own bounded subscription.)
	QueueSize int `mapstructure:"queue_size"`
}

var _ component.Config = (*Config)(nil)

// Defaults, documented in docs/events.md.
const (
	DefaultFlushInterval = time.Second
	DefaultMaxBatch      = 100
	DefaultQueueSize     = 1_000
)

// DefaultExtension is the extension that owns the heatmap and the event
// bus in Bantay's distribution.
var DefaultExtension = component.MustNewID("bantay")

func createDefaultConfig() component.Config {
	return &Config{
		Extension:     DefaultExtension,
		FlushInterval: DefaultFlushInterval,
		MaxBatch:      DefaultMaxBatch,
		QueueSize:     DefaultQueueSize,
	}
}

// Validate reports every invalid field by its configuration name.
func (c *Config) Validate() error {
	var errs []error
	if c.Extension.Type().String() == "" {
		errs = append(errs, errors.New("extension: must name the extension that provides the heatmap and/or the event bus (e.g. bantay)"))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Minute {
		errs = append(errs, fmt.Errorf("flush_interval: %v is outside 10ms..1m", c.FlushInterval))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("queue_size: %d is below 1", c.QueueSize))
	}
	if c.MaxBatch < 1 || c.MaxBatch > max(c.QueueSize, 1) {
		errs = append(errs, fmt.Errorf("max_batch: %d is outside 1..queue_size (%d)", c.MaxBatch, c.QueueSize))
	}
	return errors.Join(errs...)
}
