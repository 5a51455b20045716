package aggregate

import (
	"errors"
	"fmt"
	"time"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// DefaultBounds are the latency bucket upper bounds (ms) of the metric model
// (docs/metric-model.md). Incoming histograms with other bounds are folded
// into these (see Config.Bounds).
var DefaultBounds = metricmodel.LatencyBounds

// Config configures the aggregation. The zero value of every field means
// "use the default"; DefaultConfig spells them out. The field names are
// those of the bantay extension's `heatmap:` section (docs/heatmap.md).
type Config struct {
	// Resolution is the width of one time slot: the probe cadence and the
	// column width of the drill-down matrix. Windows and History must be
	// multiples of it.
	Resolution time.Duration `mapstructure:"resolution"`
	// History is how far back the drill-down matrix and the baseline reach.
	History time.Duration `mapstructure:"history"`
	// Windows are the sliding windows the cells report (names like "5m").
	Windows []time.Duration `mapstructure:"windows"`
	// ProbeInterval is the assumed probe cadence for staleness until a cell
	// has seen two points of one stream and learnt the real one.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// StaleAfter is how many probe intervals without data make a cell stale.
	StaleAfter float64 `mapstructure:"stale_after"`
	// Expire removes cells (and delta-tracking state of streams) that have
	// not received data for this long.
	Expire time.Duration `mapstructure:"expire"`
	// MaxCells bounds the number of cells; points for new cells beyond it are
	// dropped and counted.
	MaxCells int `mapstructure:"max_cells"`
	// MaxStreams bounds the number of tracked cumulative streams.
	MaxStreams int `mapstructure:"max_streams"`
	// Bounds are the bucket upper bounds (ms) every cell stores.
	Bounds []float64 `mapstructure:"bounds"`

	// Events tunes the degraded/recovered hysteresis.
	Events EventsConfig `mapstructure:"events"`
}

// EventsConfig sets when a cell is degraded and when it has recovered. The
// gap between the enter and leave thresholds, plus Hold, is the hysteresis
// that keeps a flapping path from flooding the event stream.
type EventsConfig struct {
	// Window is the window whose p95 and loss are compared to the baseline.
	Window time.Duration `mapstructure:"window"`
	// DegradedRatio: p95(window) above baseline p95 × this enters degraded.
	DegradedRatio float64 `mapstructure:"degraded_ratio"`
	// DegradedMinDelta: ... and at least this many ms above the baseline, so
	// a 1 ms path going to 2 ms is not an incident.
	DegradedMinDelta float64 `mapstructure:"degraded_min_delta_ms"`
	// RecoveredRatio: p95 back under baseline × this (with loss under
	// RecoveredLoss) leaves degraded. Must be below DegradedRatio.
	RecoveredRatio float64 `mapstructure:"recovered_ratio"`
	// RecoveredMinDelta: ... or p95 at most this many ms above the baseline.
	// It must be below DegradedMinDelta, or a path whose baseline is small
	// enough for DegradedMinDelta to decide (under 20 ms with the defaults)
	// would have one threshold for entering and leaving, and flap. Zero
	// means half of DegradedMinDelta.
	RecoveredMinDelta float64 `mapstructure:"recovered_min_delta_ms"`
	// DegradedLoss enters degraded when the window's loss ratio reaches it.
	DegradedLoss float64 `mapstructure:"degraded_loss"`
	// RecoveredLoss must be below DegradedLoss.
	RecoveredLoss float64 `mapstructure:"recovered_loss"`
	// Hold is how long a condition must persist before the state changes.
	Hold time.Duration `mapstructure:"hold"`
	// MinSamples is the minimum number of samples in the window (and
	// attempts, for loss) before a judgement is made.
	MinSamples int `mapstructure:"min_samples"`
	// Buffer is the per-subscriber event queue; overflow drops and counts.
	Buffer int `mapstructure:"buffer"`
}

// DefaultConfig returns the configuration used for every zero field.
func DefaultConfig() Config {
	return Config{
		Resolution:    15 * time.Second,
		History:       time.Hour,
		Windows:       []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute},
		ProbeInterval: 15 * time.Second,
		StaleAfter:    2,
		Expire:        time.Hour,
		MaxCells:      20000,
		MaxStreams:    500000,
		Bounds:        append([]float64(nil), DefaultBounds...),
		Events: EventsConfig{
			Window:           5 * time.Minute,
			DegradedRatio:    1.5,
			DegradedMinDelta: 10,
			RecoveredRatio:   1.2,
			DegradedLoss:     0.05,
			RecoveredLoss:    0.02,
			Hold:             30 * time.Second,
			MinSamples:       5,
			Buffer:           256,
			// RecoveredMinDelta stays 0: it follows DegradedMinDelta (half
			// of it, 5 ms here), so an operator who raises one need not
			// remember the other.
		},
	}
}

// setDefault sets *v to def when it is zero.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// WithDefaults fills every zero field from DefaultConfig.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.Resolution, d.Resolution)
	setDefault(&c.History, d.History)
	if len(c.Windows) == 0 {
		c.Windows = d.Windows
	}
	setDefault(&c.ProbeInterval, d.ProbeInterval)
	setDefault(&c.StaleAfter, d.StaleAfter)
	setDefault(&c.Expire, d.Expire)
	setDefault(&c.MaxCells, d.MaxCells)
	setDefault(&c.MaxStreams, d.MaxStreams)
	if len(c.Bounds) == 0 {
		c.Bounds = d.Bounds
	}
	e, de := &c.Events, d.Events
	setDefault(&e.Window, de.Window)
	setDefault(&e.DegradedRatio, de.DegradedRatio)
	setDefault(&e.DegradedMinDelta, de.DegradedMinDelta)
	setDefault(&e.RecoveredRatio, de.RecoveredRatio)
	setDefault(&e.RecoveredMinDelta, e.DegradedMinDelta/2)
	setDefault(&e.DegradedLoss, de.DegradedLoss)
	setDefault(&e.RecoveredLoss, de.RecoveredLoss)
	setDefault(&e.Hold, de.Hold)
	setDefault(&e.MinSamples, de.MinSamples)
	setDefault(&e.Buffer, de.Buffer)
	return c
}

// Validate reports every invalid field by its configuration name. Zero
// fields are valid: they take defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if c.Resolution < time.Second {
		bad("resolution", "%v is below 1s", c.Resolution)
	}
	if c.History < c.Resolution || c.History%c.Resolution != 0 {
		bad("history", "%v is not a positive multiple of resolution %v", c.History, c.Resolution)
	} else if n := c.History / c.Resolution; n > 4096 {
		bad("history", "%v / resolution %v = %d slots, more than 4096", c.History, c.Resolution, n)
	}
	seen := map[time.Duration]bool{}
	for i, w := range c.Windows {
		switch {
		case w < c.Resolution || w%c.Resolution != 0:
			bad(fmt.Sprintf("windows[%d]", i), "%v is not a positive multiple of resolution %v", w, c.Resolution)
		case w > c.History:
			bad(fmt.Sprintf("windows[%d]", i), "%v is longer than history %v", w, c.History)
		case seen[w]:
			bad(fmt.Sprintf("windows[%d]", i), "%v is listed twice", w)
		}
		seen[w] = true
	}
	if len(c.Windows) > 8 {
		bad("windows", "%d windows, at most 8", len(c.Windows))
	}
	if !seen[c.Events.Window] {
		bad("events.window", "%v is not one of windows", c.Events.Window)
	}
	if c.ProbeInterval < 0 {
		bad("probe_interval", "%v is negative", c.ProbeInterval)
	}
	if c.StaleAfter < 1 {
		bad("stale_after", "%g is below 1 probe interval", c.StaleAfter)
	}
	if c.Expire < c.Resolution {
		bad("expire", "%v is below resolution %v", c.Expire, c.Resolution)
	}
	if c.MaxCells < 1 {
		bad("max_cells", "%d is below 1", c.MaxCells)
	}
	if c.MaxStreams < 1 {
		bad("max_streams", "%d is below 1", c.MaxStreams)
	}
	if len(c.Bounds) > 64 {
		bad("bounds", "%d bounds, at most 64", len(c.Bounds))
	}
	for i, b := range c.Bounds {
		if !(b > 0) || b != b || b > 1e9 {
			bad(fmt.Sprintf("bounds[%d]", i), "%g is not a positive finite number", b)
		} else if i > 0 && b <= c.Bounds[i-1] {
			bad(fmt.Sprintf("bounds[%d]", i), "%g is not above the previous bound %g", b, c.Bounds[i-1])
		}
	}
	e := c.Events
	if e.DegradedRatio <= 1 {
		bad("events.degraded_ratio", "%g must be above 1", e.DegradedRatio)
	}
	if e.RecoveredRatio < 1 || e.RecoveredRatio >= e.DegradedRatio {
		bad("events.recovered_ratio", "%g must be in [1, degraded_ratio %g)", e.RecoveredRatio, e.DegradedRatio)
	}
	if e.DegradedMinDelta < 0 {
		bad("events.degraded_min_delta_ms", "%g is negative", e.DegradedMinDelta)
	} else if e.RecoveredMinDelta < 0 || e.RecoveredMinDelta >= e.DegradedMinDelta {
		bad("events.recovered_min_delta_ms", "%g must be in [0, degraded_min_delta_ms %g)", e.RecoveredMinDelta, e.DegradedMinDelta)
	}
	if e.DegradedLoss <= 0 || e.DegradedLoss > 1 {
		bad("events.degraded_loss", "%g is outside (0, 1]", e.DegradedLoss)
	}
	if e.RecoveredLoss < 0 || e.RecoveredLoss >= e.DegradedLoss {
		bad("events.recovered_loss", "%g must be in [0, degraded_loss %g)", e.RecoveredLoss, e.DegradedLoss)
	}
	if e.Hold < 0 {
		bad("events.hold", "%v is negative", e.Hold)
	}
	if e.MinSamples < 1 {
		bad("events.min_samples", "%d is below 1", e.MinSamples)
	}
	if e.Buffer < 1 {
		bad("events.buffer", "%d is below 1", e.Buffer)
	}
	return errors.Join(errs...)
}
