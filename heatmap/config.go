package heatmap

import (
	"errors"
	"fmt"
	"time"

	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// DefaultBounds are the latency bucket upper bounds (ms) of the metric model
// (docs/metric-model.md). Incoming histograms with other bounds are folded
// into these (see Config.Bounds).
var DefaultBounds = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}

// Config configures the heatmap aggregation and its websocket hub. The zero
// value of every field means "use the default"; DefaultConfig spells them out.
type Config struct {
	// Resolution is the width of one time slot: the probe cadence and the
	// column width of the drill-down matrix. Windows and History must be
	// multiples of it.
	Resolution time.Duration `mapstructure:"resolution"`
	// History is how far back the drill-down matrix and the baseline reach.
	History time.Duration `mapstructure:"history"`
	// Windows are the sliding windows the cells report (names like "5m").
	Windows []time.Duration `mapstructure:"windows"`
	// DefaultWindow is the window a new subscription starts with.
	DefaultWindow time.Duration `mapstructure:"default_window"`
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

	// BroadcastInterval is the minimum time between two delta frames.
	BroadcastInterval time.Duration `mapstructure:"broadcast_interval"`
	// SendQueue is the number of frames a connection may have queued before
	// its deltas are dropped in favour of a fresh snapshot.
	SendQueue int `mapstructure:"send_queue"`
	// WriteTimeout closes a connection whose frame write takes longer.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// PingInterval is how often the server pings each client.
	PingInterval time.Duration `mapstructure:"ping_interval"`
	// PongTimeout closes a connection from which nothing arrived for this long.
	PongTimeout time.Duration `mapstructure:"pong_timeout"`
	// MaxMessageBytes is the read limit for one client message.
	MaxMessageBytes int64 `mapstructure:"max_message_bytes"`
	// MaxConnections refuses upgrades beyond this many open connections.
	MaxConnections int `mapstructure:"max_connections"`
	// MaxErrors closes a connection after this many error frames; the count
	// decays by one per minute, so only a burst of bad messages closes.
	MaxErrors int `mapstructure:"max_errors"`
	// RequestBurst and RequestRate limit subscribe/drilldown messages per
	// connection (token bucket).
	RequestBurst int     `mapstructure:"request_burst"`
	RequestRate  float64 `mapstructure:"request_rate"`
	// CompressMinBytes: frames at least this large are sent with
	// permessage-deflate when the client negotiated it.
	CompressMinBytes int `mapstructure:"compress_min_bytes"`
	// AllowedOrigins lists extra browser origins (e.g. "https://noc.example")
	// besides the same origin; "*" allows any.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// Token, when set, is required as "Authorization: Bearer" or ?token=.
	Token string `mapstructure:"token"`

	// Events tunes the degraded/recovered hysteresis.
	Events EventsConfig `mapstructure:"events"`

	// Gazetteer places cities on the wall (region, island group,
	// coordinates, north-to-south order) and canonicalises carrier and
	// network type filters; nil means gazetteer.Default(). It is only the
	// starting point: Heatmap.SetGazetteer replaces it while running, which
	// is how the collector's citytag processor hands over the gazetteer it
	// tags with (the shipped one plus the operator's cities).
	Gazetteer *gazetteer.Gazetteer `mapstructure:"-"`
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
		Resolution:        15 * time.Second,
		History:           time.Hour,
		Windows:           []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute},
		DefaultWindow:     5 * time.Minute,
		ProbeInterval:     15 * time.Second,
		StaleAfter:        2,
		Expire:            time.Hour,
		MaxCells:          20000,
		MaxStreams:        500000,
		Bounds:            append([]float64(nil), DefaultBounds...),
		BroadcastInterval: time.Second,
		SendQueue:         8,
		WriteTimeout:      10 * time.Second,
		PingInterval:      30 * time.Second,
		PongTimeout:       60 * time.Second,
		MaxMessageBytes:   4096,
		MaxConnections:    15000,
		MaxErrors:         20,
		RequestBurst:      5,
		RequestRate:       1,
		CompressMinBytes:  512,
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

// withDefaults fills every zero field from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.Resolution, d.Resolution)
	setDur(&c.History, d.History)
	if len(c.Windows) == 0 {
		c.Windows = d.Windows
	}
	setDur(&c.DefaultWindow, d.DefaultWindow)
	setDur(&c.ProbeInterval, d.ProbeInterval)
	if c.StaleAfter == 0 {
		c.StaleAfter = d.StaleAfter
	}
	setDur(&c.Expire, d.Expire)
	if c.MaxCells == 0 {
		c.MaxCells = d.MaxCells
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = d.MaxStreams
	}
	if len(c.Bounds) == 0 {
		c.Bounds = d.Bounds
	}
	setDur(&c.BroadcastInterval, d.BroadcastInterval)
	if c.SendQueue == 0 {
		c.SendQueue = d.SendQueue
	}
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setDur(&c.PingInterval, d.PingInterval)
	setDur(&c.PongTimeout, d.PongTimeout)
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = d.MaxConnections
	}
	if c.MaxErrors == 0 {
		c.MaxErrors = d.MaxErrors
	}
	if c.RequestBurst == 0 {
		c.RequestBurst = d.RequestBurst
	}
	if c.RequestRate == 0 {
		c.RequestRate = d.RequestRate
	}
	if c.CompressMinBytes == 0 {
		c.CompressMinBytes = d.CompressMinBytes
	}
	e, de := &c.Events, d.Events
	setDur(&e.Window, de.Window)
	if e.DegradedRatio == 0 {
		e.DegradedRatio = de.DegradedRatio
	}
	if e.DegradedMinDelta == 0 {
		e.DegradedMinDelta = de.DegradedMinDelta
	}
	if e.RecoveredRatio == 0 {
		e.RecoveredRatio = de.RecoveredRatio
	}
	if e.RecoveredMinDelta == 0 {
		e.RecoveredMinDelta = e.DegradedMinDelta / 2
	}
	if e.DegradedLoss == 0 {
		e.DegradedLoss = de.DegradedLoss
	}
	if e.RecoveredLoss == 0 {
		e.RecoveredLoss = de.RecoveredLoss
	}
	setDur(&e.Hold, de.Hold)
	if e.MinSamples == 0 {
		e.MinSamples = de.MinSamples
	}
	if e.Buffer == 0 {
		e.Buffer = de.Buffer
	}
	if c.Gazetteer == nil {
		c.Gazetteer = gazetteer.Default()
	}
	return c
}

// Validate reports every invalid field by its configuration name. Zero
// fields are valid: they take defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
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
	if !seen[c.DefaultWindow] {
		bad("default_window", "%v is not one of windows", c.DefaultWindow)
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
	if c.BroadcastInterval < 10*time.Millisecond {
		bad("broadcast_interval", "%v is below 10ms", c.BroadcastInterval)
	}
	if c.SendQueue < 2 || c.SendQueue > 1024 {
		bad("send_queue", "%d is outside 2..1024", c.SendQueue)
	}
	if c.WriteTimeout < 0 {
		bad("write_timeout", "%v is negative", c.WriteTimeout)
	}
	if c.PongTimeout <= c.PingInterval {
		bad("pong_timeout", "%v must be longer than ping_interval %v", c.PongTimeout, c.PingInterval)
	}
	if c.MaxMessageBytes < 256 {
		bad("max_message_bytes", "%d is below 256", c.MaxMessageBytes)
	}
	if c.MaxConnections < 1 {
		bad("max_connections", "%d is below 1", c.MaxConnections)
	}
	if c.MaxErrors < 1 {
		bad("max_errors", "%d is below 1", c.MaxErrors)
	}
	if c.RequestBurst < 1 {
		bad("request_burst", "%d is below 1", c.RequestBurst)
	}
	if c.RequestRate <= 0 {
		bad("request_rate", "%g is not positive", c.RequestRate)
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
