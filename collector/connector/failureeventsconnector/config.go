package failureeventsconnector

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Config configures the failure_events connector. Every field has a
// default (createDefaultConfig); docs/events.md explains the folding rules.
type Config struct {
	// ProbeInterval is the assumed spacing of a stream's points until the
	// connector has seen two of them and learnt the real one. It sets how
	// soon a silent stream's burst is closed and which first points count
	// as a fresh counter.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// QuietIntervals is how many consecutive points of a stream without a
	// new failure end its burst ("no failure for 2 probe intervals").
	// Counting the probe's own points, not wall-clock seconds, keeps the
	// rule independent of scheduler jitter and late delivery.
	QuietIntervals int `mapstructure:"quiet_intervals"`
	// MaxBurst is the longest span (first to last failure) one event
	// covers; a burst that lasts longer is emitted and continued in a new
	// event marked as a continuation.
	MaxBurst time.Duration `mapstructure:"max_burst"`
	// MaxStreams bounds the tracked failure streams (one per probe, uplink,
	// target, method and reason). Points of new streams beyond it are
	// counted and ignored until idle streams expire.
	MaxStreams int `mapstructure:"max_streams"`
	// Expire forgets a stream (and its counter state) that received no
	// point for this long.
	Expire time.Duration `mapstructure:"expire"`
	// QueueSize bounds the events waiting to be handed to the logs
	// pipeline; beyond it events are dropped and counted.
	QueueSize int `mapstructure:"queue_size"`
	// FlushInterval is how often queued events are handed on (and silent
	// streams checked); MaxBatch events are handed on at once.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// MaxBatch is the most events in one ConsumeLogs call.
	MaxBatch int `mapstructure:"max_batch"`
}

var _ component.Config = (*Config)(nil)

// Defaults, documented in docs/events.md.
const (
	DefaultProbeInterval  = 15 * time.Second
	DefaultQuietIntervals = 2
	DefaultMaxBurst       = 5 * time.Minute
	DefaultMaxStreams     = 50_000
	DefaultExpire         = time.Hour
	DefaultQueueSize      = 1_000
	DefaultFlushInterval  = time.Second
	DefaultMaxBatch       = 100
)

func createDefaultConfig() component.Config {
	return &Config{
		ProbeInterval:  DefaultProbeInterval,
		QuietIntervals: DefaultQuietIntervals,
		MaxBurst:       DefaultMaxBurst,
		MaxStreams:     DefaultMaxStreams,
		Expire:         DefaultExpire,
		QueueSize:      DefaultQueueSize,
		FlushInterval:  DefaultFlushInterval,
		MaxBatch:       DefaultMaxBatch,
	}
}

// Validate reports every invalid field by its configuration name.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if c.ProbeInterval < time.Second {
		bad("probe_interval", "%v is below 1s", c.ProbeInterval)
	}
	if c.QuietIntervals < 1 || c.QuietIntervals > 100 {
		bad("quiet_intervals", "%d is outside 1..100", c.QuietIntervals)
	}
	if c.MaxBurst < c.ProbeInterval {
		bad("max_burst", "%v is shorter than probe_interval %v", c.MaxBurst, c.ProbeInterval)
	}
	if c.MaxStreams < 1 {
		bad("max_streams", "%d is below 1", c.MaxStreams)
	}
	if c.Expire < c.MaxBurst {
		bad("expire", "%v is shorter than max_burst %v (a stream could be forgotten mid-burst)", c.Expire, c.MaxBurst)
	}
	if c.QueueSize < 1 {
		bad("queue_size", "%d is below 1", c.QueueSize)
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Minute {
		bad("flush_interval", "%v is outside 10ms..1m", c.FlushInterval)
	}
	if c.MaxBatch < 1 || c.MaxBatch > c.QueueSize {
		bad("max_batch", "%d is outside 1..queue_size (%d)", c.MaxBatch, c.QueueSize)
	}
	return errors.Join(errs...)
}
