package bantayextension

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"

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

	Storage StorageConfig  `mapstructure:"storage"`
	Query   QueryConfig    `mapstructure:"query"`
	Heatmap heatmap.Config `mapstructure:"heatmap"`

	// Access says which route needs which credential (docs/security.md).
	// Without credentials everything is open, and a warning says so.
	Access webauth.Config `mapstructure:"access"`

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
}

// QueryConfig configures the PromQL engine like Prometheus's --query.* flags.
type QueryConfig struct {
	LookbackDelta time.Duration `mapstructure:"lookback_delta"`
	Timeout       time.Duration `mapstructure:"timeout"`
	MaxSamples    int           `mapstructure:"max_samples"`
}

func (cfg *Config) storeConfig() store.Config {
	return store.Config{
		Dir:                  cfg.Storage.Path,
		Retention:            cfg.Storage.Retention,
		OutOfOrderWindow:     cfg.Storage.OutOfOrderWindow,
		MaxConcurrentAppends: cfg.Storage.MaxConcurrentAppends,
		AppendWait:           cfg.Storage.AppendWait,
		RetryAfter:           cfg.Storage.RetryAfter,
		LookbackDelta:        cfg.Query.LookbackDelta,
		QueryTimeout:         cfg.Query.Timeout,
		MaxSamples:           cfg.Query.MaxSamples,
	}
}

// Validate names the first bad field.
func (cfg *Config) Validate() error {
	if cfg.NetAddr.Endpoint == "" {
		return errors.New("endpoint: must be set (e.g. 127.0.0.1:8080)")
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
		return fmt.Errorf("storage/query: %w", err)
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
