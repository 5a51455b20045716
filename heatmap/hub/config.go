package hub

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Config configures the websocket hub and its HTTP handlers. The zero value
// of every field means "use the default"; DefaultConfig spells them out.
// The field names are those of the bantay extension's `heatmap:` section
// (docs/heatmap.md).
type Config struct {
	// DefaultWindow is the window a new subscription starts with; one of
	// the aggregation's windows.
	DefaultWindow time.Duration `mapstructure:"default_window"`
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
	// MaxErrors closes a connection after this many error frames; the
	// budget refills by one per minute, so only a burst of bad messages
	// closes.
	MaxErrors int `mapstructure:"max_errors"`
	// RequestBurst and RequestRate limit subscribe/drilldown messages per
	// connection (a token bucket: golang.org/x/time/rate).
	RequestBurst int     `mapstructure:"request_burst"`
	RequestRate  float64 `mapstructure:"request_rate"`
	// CompressMinBytes: frames at least this large are sent with
	// permessage-deflate when the client negotiated it.
	CompressMinBytes int `mapstructure:"compress_min_bytes"`
	// Writers is the number of goroutines that write every connection's
	// frames (non-blocking; a connection whose socket is full is finished
	// by a goroutine of its own). Default: one per core (GOMAXPROCS).
	Writers int `mapstructure:"writers"`
	// AllowedOrigins lists extra browser origins (e.g. "https://noc.example")
	// besides the same origin; "*" allows any.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// Token, when set, is required as "Authorization: Bearer" or ?token=.
	Token string `mapstructure:"token"`
}

// DefaultConfig returns the configuration used for every zero field.
func DefaultConfig() Config {
	return Config{
		DefaultWindow:     5 * time.Minute,
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
		Writers:           runtime.GOMAXPROCS(0),
	}
}

// WithDefaults fills every zero field from DefaultConfig.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.DefaultWindow == 0 {
		c.DefaultWindow = d.DefaultWindow
	}
	if c.BroadcastInterval == 0 {
		c.BroadcastInterval = d.BroadcastInterval
	}
	if c.SendQueue == 0 {
		c.SendQueue = d.SendQueue
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = d.PingInterval
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = d.PongTimeout
	}
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
	if c.Writers == 0 {
		c.Writers = d.Writers
	}
	return c
}

// DefaultWindowIn returns the index of default_window among the
// aggregation's windows, or an error naming the field.
func (c Config) DefaultWindowIn(windows []time.Duration) (int, error) {
	w := c.WithDefaults().DefaultWindow
	if i := slices.Index(windows, w); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("default_window: %v is not one of windows", w)
}

// Validate reports every invalid field by its configuration name. Zero
// fields are valid: they take defaults. Whether default_window is one of
// the windows is DefaultWindowIn's to say.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
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
	if c.Writers < 1 || c.Writers > 256 {
		bad("writers", "%d is outside 1..256", c.Writers)
	}
	if c.RequestRate <= 0 {
		bad("request_rate", "%g is not positive", c.RequestRate)
	}
	return errors.Join(errs...)
}
