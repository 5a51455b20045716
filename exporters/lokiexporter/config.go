package lokiexporter

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config is the configuration of the loki exporter.
type Config struct {
	// ClientConfig holds endpoint, TLS, headers, timeout and the auth
	// extension. Endpoint is either a base URL (the push path
	// /loki/api/v1/push is appended, as for Grafana Loki and Grafana Cloud)
	// or a full URL whose path ends in /push, used as it is (VictoriaLogs
	// serves Loki's API at /insert/loki/api/v1/push).
	confighttp.ClientConfig `mapstructure:",squash"`

	// QueueConfig is exporterhelper's sending queue. It must stay enabled
	// and non-blocking: the queue is what keeps a slow or absent Loki from
	// holding back whoever produces events.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`

	// BackOffConfig is exporterhelper's retry with exponential backoff.
	BackOffConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	// TenantID, when set, is sent as the X-Scope-OrgID header, which
	// multi-tenant Loki requires.
	TenantID string `mapstructure:"tenant_id"`

	// BasicAuth and BearerToken set the Authorization header without an
	// auth extension (Grafana Cloud uses basic auth: the stack's user id and
	// an access-policy token). At most one of them may be set.
	BasicAuth   BasicAuthConfig     `mapstructure:"basic_auth"`
	BearerToken configopaque.String `mapstructure:"bearer_token"`

	// Labels is the allow-list of record attributes that become Loki
	// stream labels. Everything else goes to structured metadata. Keep it
	// short and bounded: every distinct label set is a Loki stream.
	Labels []LabelConfig `mapstructure:"labels"`

	// RateLimit bounds how many events one source (a probe) may send.
	RateLimit RateLimitConfig `mapstructure:"rate_limit"`

	_ struct{}
}

// BasicAuthConfig is HTTP basic authentication.
type BasicAuthConfig struct {
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
}

// LabelConfig maps one record attribute to one Loki label.
type LabelConfig struct {
	// Attribute is the log record (or resource) attribute name.
	Attribute string `mapstructure:"attribute"`
	// Label is the Loki label name; empty means the attribute name with
	// every character Loki does not allow replaced by '_'.
	Label string `mapstructure:"label"`
}

// RateLimitConfig is the per-source token bucket.
type RateLimitConfig struct {
	// Enabled turns the limiter on (the default).
	Enabled bool `mapstructure:"enabled"`
	// Key is the attribute that identifies a source. Records without it
	// (the collector's own events) are never limited.
	Key string `mapstructure:"key"`
	// EventsPerMinute is the sustained rate one source may send.
	EventsPerMinute float64 `mapstructure:"events_per_minute"`
	// Burst is how many events a quiet source may send at once.
	Burst int `mapstructure:"burst"`
	// SummaryInterval is how often a still-flapping source's suppressed
	// events are summarised in one entry; a source that calms down gets
	// its summary right before its next admitted event.
	SummaryInterval time.Duration `mapstructure:"summary_interval"`
	// MaxSources bounds the limiter's memory; sources beyond it share one
	// bucket until idle ones are forgotten.
	MaxSources int `mapstructure:"max_sources"`
}

// Defaults, documented in docs/loki.md.
const (
	// DefaultQueueSize is the sending queue bound in log records (the
	// queue counts items, not requests, so the bound is in events).
	DefaultQueueSize = 10_000
	// DefaultNumConsumers is the number of concurrent pushes.
	DefaultNumConsumers = 2
	// DefaultBatchMaxSize caps the events in one push request.
	DefaultBatchMaxSize = 1_000
	// DefaultTimeout bounds one push request.
	DefaultTimeout = 30 * time.Second
)

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// defaultLabels are Bantay's bounded event dimensions.
func defaultLabels() []LabelConfig {
	return []LabelConfig{
		{Attribute: "service", Label: "service"},
		{Attribute: "event.kind", Label: "kind"},
		{Attribute: "src_city", Label: "src_city"},
		{Attribute: "carrier", Label: "carrier"},
		{Attribute: "island_group", Label: "island_group"},
	}
}

// maxLabels keeps the allow-list within Loki's default limit of 15 label
// names per stream, with room for what Loki adds itself.
const maxLabels = 12

// Validate checks the configuration and names the bad field.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: must be set (e.g. http://loki:3100)"))
	} else if _, err := pushURL(cfg.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("endpoint: %w", err))
	}
	if cfg.Compression.IsCompressed() {
		errs = append(errs, fmt.Errorf("compression: must be empty, the push body is always snappy-compressed protobuf (got %q)", cfg.Compression))
	}
	if !cfg.QueueConfig.HasValue() {
		errs = append(errs, errors.New("sending_queue: must be enabled, so that a slow or absent Loki never holds back event producers"))
	} else {
		q := cfg.QueueConfig.Get()
		if q.BlockOnOverflow {
			errs = append(errs, errors.New("sending_queue::block_on_overflow: must be false, events beyond the queue bound are dropped and counted rather than blocking producers"))
		}
		if q.WaitForResult {
			errs = append(errs, errors.New("sending_queue::wait_for_result: must be false, producers would wait for Loki (for as long as retries last)"))
		}
	}
	if cfg.BasicAuth.Username != "" && cfg.BearerToken != "" {
		errs = append(errs, errors.New("basic_auth and bearer_token: set at most one"))
	}
	if cfg.BasicAuth.Username == "" && cfg.BasicAuth.Password != "" {
		errs = append(errs, errors.New("basic_auth::username: must be set when basic_auth::password is"))
	}
	if (cfg.BasicAuth.Username != "" || cfg.BearerToken != "") && hasHeader(cfg.Headers, "Authorization") {
		errs = append(errs, errors.New("headers: Authorization conflicts with basic_auth/bearer_token"))
	}
	if cfg.TenantID != "" && hasHeader(cfg.Headers, "X-Scope-OrgID") {
		errs = append(errs, errors.New("headers: X-Scope-OrgID conflicts with tenant_id"))
	}
	if strings.ContainsAny(cfg.TenantID, "\r\n") {
		errs = append(errs, errors.New("tenant_id: must not contain line breaks"))
	}
	errs = append(errs, validateLabels(cfg.Labels)...)
	errs = append(errs, cfg.RateLimit.validate()...)
	return errors.Join(errs...)
}

func hasHeader(h configopaque.MapList, name string) bool {
	for k := range h.Iter {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func validateLabels(labels []LabelConfig) []error {
	var errs []error
	if len(labels) == 0 {
		errs = append(errs, errors.New("labels: must name at least one attribute (Loki needs one label per stream)"))
	}
	if len(labels) > maxLabels {
		errs = append(errs, fmt.Errorf("labels: %d labels, at most %d (labels must stay few and bounded; put the rest in structured metadata)", len(labels), maxLabels))
	}
	seenAttr := map[string]bool{}
	seenLabel := map[string]bool{}
	for i, l := range labels {
		if l.Attribute == "" {
			errs = append(errs, fmt.Errorf("labels[%d]::attribute: must be set", i))
			continue
		}
		name := l.labelName()
		if !labelNameRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("labels[%d]::label: %q is not a valid Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)", i, name))
		}
		if strings.HasPrefix(name, "__") {
			errs = append(errs, fmt.Errorf("labels[%d]::label: %q is reserved (names starting with __ are internal to Loki)", i, name))
		}
		if seenAttr[l.Attribute] {
			errs = append(errs, fmt.Errorf("labels[%d]::attribute: %q listed twice", i, l.Attribute))
		}
		if seenLabel[name] {
			errs = append(errs, fmt.Errorf("labels[%d]::label: %q used twice", i, name))
		}
		seenAttr[l.Attribute], seenLabel[name] = true, true
	}
	return errs
}

func (l LabelConfig) labelName() string {
	if l.Label != "" {
		return l.Label
	}
	return sanitizeName(l.Attribute)
}

func (rl *RateLimitConfig) validate() []error {
	if !rl.Enabled {
		return nil
	}
	var errs []error
	if rl.Key == "" {
		errs = append(errs, errors.New("rate_limit::key: must name the attribute that identifies a source (e.g. probe)"))
	}
	if rl.EventsPerMinute <= 0 {
		errs = append(errs, fmt.Errorf("rate_limit::events_per_minute: must be positive (got %v)", rl.EventsPerMinute))
	}
	if rl.Burst < 1 {
		errs = append(errs, fmt.Errorf("rate_limit::burst: must be at least 1 (got %d)", rl.Burst))
	}
	if rl.SummaryInterval < time.Second {
		errs = append(errs, fmt.Errorf("rate_limit::summary_interval: must be at least 1s (got %s)", rl.SummaryInterval))
	}
	if rl.MaxSources < 1 {
		errs = append(errs, fmt.Errorf("rate_limit::max_sources: must be at least 1 (got %d)", rl.MaxSources))
	}
	return errs
}

// pushURL resolves the configured endpoint to the URL pushes go to.
func pushURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme must be http or https", endpoint)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q: host missing", endpoint)
	}
	if !strings.HasSuffix(u.Path, "/push") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/loki/api/v1/push"
	}
	return u.String(), nil
}
