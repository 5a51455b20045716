package bantayextension

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/confignet"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/internal/store"
	"github.com/bantay-noc/bantay/internal/webauth"
)

// Config configures the Bantay server: the embedded store, its HTTP
// listener (web page, websocket, Prometheus API) and the live heatmap.
type Config struct {
	// ServerConfig is the HTTP listener (endpoint, TLS, auth, CORS) for the
	// web page, /ws, /api/heatmap/… and the Prometheus API /api/v1/….
	confighttp.ServerConfig `mapstructure:",squash"`

	// ExternalURL is how users reach the listener; alert notifications link to it.
	ExternalURL string `mapstructure:"external_url"`

	// PrometheusConfig is a file in Prometheus's own configuration format
	// whose rule_files, global evaluation_interval and external_labels,
	// alerting (Alertmanagers), remote_write and scrape_configs Bantay
	// applies to its store. Reloaded on SIGHUP and POST /-/reload.
	PrometheusConfig string `mapstructure:"prometheus_config"`

	Storage    StorageConfig    `mapstructure:"storage"`
	Query      QueryConfig      `mapstructure:"query"`
	RemoteRead RemoteReadConfig `mapstructure:"remote_read"`
	Heatmap    heatmap.Config   `mapstructure:"heatmap"`

	// Access says which route needs which credential (docs/security.md).
	// Without credentials everything is open, and a warning says so.
	Access webauth.Config `mapstructure:"access"`

	// Mesh serves the mesh registry to probes in mesh mode (mesh.go).
	Mesh MeshConfig `mapstructure:"mesh"`

	// EventsBuffer bounds the collector's event bus (path state changes,
	// rejected probes, rule reloads) per subscriber; beyond it events are
	// dropped and counted, never waited for.
	EventsBuffer int `mapstructure:"events_buffer"`
}

// StorageConfig configures the embedded TSDB.
type StorageConfig struct {
	Path                 string        `mapstructure:"path"`
	Retention            time.Duration `mapstructure:"retention"`
	OutOfOrderWindow     time.Duration `mapstructure:"out_of_order_window"`
	MaxConcurrentAppends int           `mapstructure:"max_concurrent_appends"`
	AppendWait           time.Duration `mapstructure:"append_wait"`
	RetryAfter           time.Duration `mapstructure:"retry_after"`
	// RecoveryInterval is how often a store whose WAL write failed (a full
	// disk) checks for room to repair the WAL and accept appends again.
	RecoveryInterval time.Duration `mapstructure:"recovery_interval"`
	// MaxExemplars sizes the in-memory exemplar ring (the trace ids of slow
	// and failed probes) like Prometheus's --storage.tsdb.max-exemplars; 0
	// turns exemplar storage off.
	MaxExemplars int64 `mapstructure:"max_exemplars"`
	// BlockDuration is the span of the TSDB's blocks (Prometheus's hidden
	// --storage.tsdb.min-block-duration, 2h): leave it, except to see head
	// compactions within a short soak.
	BlockDuration time.Duration `mapstructure:"block_duration"`
}

// QueryConfig configures the PromQL engine like Prometheus's --query.* flags.
type QueryConfig struct {
	LookbackDelta time.Duration `mapstructure:"lookback_delta"`
	Timeout       time.Duration `mapstructure:"timeout"`
	MaxSamples    int           `mapstructure:"max_samples"`
}

// RemoteReadConfig bounds the Prometheus remote-read endpoint /api/v1/read
// like Prometheus's --storage.remote.read-* flags (same defaults).
type RemoteReadConfig struct {
	// SampleLimit is the most samples one sampled read may return (0: no limit).
	SampleLimit int `mapstructure:"sample_limit"`
	// ConcurrencyLimit is how many reads run at once; more wait their turn.
	ConcurrencyLimit int `mapstructure:"concurrency_limit"`
	// MaxBytesInFrame bounds one frame of a streamed read.
	MaxBytesInFrame int `mapstructure:"max_bytes_in_frame"`
}

func (cfg *Config) storeConfig() store.Config {
	return store.Config{
		Dir:                  cfg.Storage.Path,
		Retention:            cfg.Storage.Retention,
		OutOfOrderWindow:     cfg.Storage.OutOfOrderWindow,
		MaxConcurrentAppends: cfg.Storage.MaxConcurrentAppends,
		AppendWait:           cfg.Storage.AppendWait,
		RetryAfter:           cfg.Storage.RetryAfter,
		RecoveryInterval:     cfg.Storage.RecoveryInterval,
		MaxExemplars:         cfg.Storage.MaxExemplars,
		BlockDuration:        cfg.Storage.BlockDuration,
		LookbackDelta:        cfg.Query.LookbackDelta,
		QueryTimeout:         cfg.Query.Timeout,
		MaxSamples:           cfg.Query.MaxSamples,
		RemoteRead: store.RemoteReadConfig{
			SampleLimit:      cfg.RemoteRead.SampleLimit,
			ConcurrencyLimit: cfg.RemoteRead.ConcurrencyLimit,
			MaxBytesInFrame:  cfg.RemoteRead.MaxBytesInFrame,
		},
	}
}

// Validate names the first bad field.
func (cfg *Config) Validate() error {
	if err := validateListenAddr(cfg.NetAddr); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if cfg.ExternalURL != "" {
		u, err := url.Parse(cfg.ExternalURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("external_url: %q is not an absolute URL", cfg.ExternalURL)
		}
	}
	if cfg.EventsBuffer < 1 {
		return fmt.Errorf("events_buffer: must be at least 1, got %d", cfg.EventsBuffer)
	}
	if err := cfg.storeConfig().Validate(); err != nil {
		return fmt.Errorf("storage/query/remote_read: %w", err)
	}
	if err := cfg.Heatmap.Validate(); err != nil {
		return fmt.Errorf("heatmap: %w", err)
	}
	if err := cfg.Access.Validate(); err != nil {
		return fmt.Errorf("access: %w", err)
	}
	if cfg.Access.Enabled() && cfg.Heatmap.Hub.Token != "" {
		return errors.New("heatmap::token: remove it when access has credentials (a reader token replaces it, and is stored hashed)")
	}
	if cfg.Access.Enabled() && slices.Contains(cfg.Heatmap.Hub.AllowedOrigins, "*") {
		return errors.New(`heatmap::allowed_origins: "*" would let any site open /ws with a logged-in browser's session; list the origins`)
	}
	return nil
}

// validateListenAddr refuses, at validation, an address the listener could
// never bind (no port, a port beyond 65535), so the collector fails before
// it opens the store instead of at Start.
func validateListenAddr(a confignet.AddrConfig) error {
	if a.Endpoint == "" {
		return errors.New("must be set (e.g. 127.0.0.1:8080)")
	}
	switch a.Transport {
	case confignet.TransportTypeUnix, confignet.TransportTypeUnixgram, confignet.TransportTypeUnixPacket:
		return nil // a socket path, no port
	}
	_, port, err := net.SplitHostPort(a.Endpoint)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", a.Endpoint, err)
	}
	// LookupPort checks a number's range and resolves a service name
	// (/etc/services) exactly as the listener will.
	if _, err := net.LookupPort(string(a.Transport), port); err != nil {
		return fmt.Errorf("%q: port %q: %w", a.Endpoint, port, err)
	}
	return nil
}
