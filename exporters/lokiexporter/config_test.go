package lokiexporter

import (
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/configtest"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configcompression"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/confmap"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory(), name)
}

func TestConfigStruct(t *testing.T) {
	if err := componenttest.CheckConfigStruct(NewFactory().CreateDefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	t.Run("minimal", func(t *testing.T) {
		cfg, err := loadConfig(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := pushURL(cfg.Endpoint); u != "http://localhost:3100/loki/api/v1/push" {
			t.Errorf("push URL %q", u)
		}
		q := cfg.QueueConfig.Get()
		if q.QueueSize != DefaultQueueSize || q.BlockOnOverflow || q.Sizer.String() != "items" {
			t.Errorf("default queue %+v, want %d items, non-blocking", q, DefaultQueueSize)
		}
		if len(cfg.Labels) != 5 || cfg.Labels[1].Attribute != "event.kind" || cfg.Labels[1].labelName() != "kind" {
			t.Errorf("default labels %+v", cfg.Labels)
		}
		if !cfg.RateLimit.Enabled || cfg.RateLimit.Key != "probe" {
			t.Errorf("default rate limit %+v", cfg.RateLimit)
		}
		if !cfg.BackOffConfig.Enabled {
			t.Error("retry_on_failure disabled by default")
		}
	})
	t.Run("cloud", func(t *testing.T) {
		cfg, err := loadConfig(t, "cloud")
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := pushURL(cfg.Endpoint); u != "https://logs-prod-020.grafana.net/loki/api/v1/push" {
			t.Errorf("push URL %q", u)
		}
		if cfg.BasicAuth.Username != "123456" || cfg.BasicAuth.Password == "" {
			t.Errorf("basic auth %+v", cfg.BasicAuth)
		}
	})
	t.Run("full", func(t *testing.T) {
		cfg, err := loadConfig(t, "full")
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := pushURL(cfg.Endpoint); u != "https://loki.noc.example.ph:3100/loki/api/v1/push" {
			t.Errorf("push URL %q", u)
		}
		if cfg.TenantID != "bantay-noc" || cfg.BearerToken != "s3cret" || cfg.Timeout != 10*time.Second {
			t.Errorf("tenant/token/timeout: %q %q %s", cfg.TenantID, cfg.BearerToken, cfg.Timeout)
		}
		// A configured list replaces the default one entirely.
		var names []string
		for _, l := range cfg.Labels {
			names = append(names, l.labelName())
		}
		if got := strings.Join(names, ","); got != "service,kind,island_group" {
			t.Errorf("labels %s", got)
		}
		want := RateLimitConfig{Enabled: true, Key: "probe", EventsPerMinute: 12, Burst: 20, SummaryInterval: 30 * time.Second, MaxSources: 500}
		if cfg.RateLimit != want {
			t.Errorf("rate limit %+v, want %+v", cfg.RateLimit, want)
		}
		if q := cfg.QueueConfig.Get(); q.QueueSize != 5000 || q.NumConsumers != 1 {
			t.Errorf("queue %+v", q)
		}
		if cfg.BackOffConfig.MaxElapsedTime != 30*time.Minute {
			t.Errorf("retry %+v", cfg.BackOffConfig)
		}
	})
	t.Run("victorialogs", func(t *testing.T) {
		cfg, err := loadConfig(t, "victorialogs")
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := pushURL(cfg.Endpoint); u != "http://127.0.0.1:9428/insert/loki/api/v1/push" {
			t.Errorf("push URL %q, want the configured one as it is", u)
		}
		if cfg.RateLimit.Enabled {
			t.Error("rate_limit::enabled: false ignored")
		}
	})
	t.Run("noqueue", func(t *testing.T) {
		_, err := loadConfig(t, "noqueue")
		if err == nil || !strings.Contains(err.Error(), "sending_queue") {
			t.Fatalf("err = %v, want one naming sending_queue", err)
		}
	})
}

func TestValidateNamesTheBadField(t *testing.T) {
	valid := func() *Config {
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		cfg.Endpoint = "http://localhost:3100"
		return cfg
	}
	if err := confmap.Validate(valid()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint: must be set"},
		{"bad scheme", func(c *Config) { c.Endpoint = "ftp://x" }, "scheme must be http or https"},
		{"no host", func(c *Config) { c.Endpoint = "http:///loki" }, "host missing"},
		{"compression", func(c *Config) { c.Compression = configcompression.TypeGzip }, "compression"},
		{"blocking queue", func(c *Config) { c.QueueConfig.Get().BlockOnOverflow = true }, "block_on_overflow"},
		{"waiting queue", func(c *Config) { c.QueueConfig.Get().WaitForResult = true }, "wait_for_result"},
		{"zero queue", func(c *Config) { c.QueueConfig.Get().QueueSize = 0 }, "queue_size"},
		{"two auths", func(c *Config) { c.BasicAuth.Username = "u"; c.BearerToken = "t" }, "set at most one"},
		{"password only", func(c *Config) { c.BasicAuth.Password = "p" }, "basic_auth::username"},
		{"auth header clash", func(c *Config) {
			c.BearerToken = "t"
			c.Headers.Set("authorization", configopaque.String("Basic x"))
		}, "headers: Authorization"},
		{"tenant header clash", func(c *Config) {
			c.TenantID = "a"
			c.Headers.Set("X-Scope-OrgID", "b")
		}, "X-Scope-OrgID"},
		{"no labels", func(c *Config) { c.Labels = nil }, "labels: must name"},
		{"bad label name", func(c *Config) { c.Labels[0].Label = "1x" }, `labels[0]::label: "1x"`},
		{"reserved label", func(c *Config) { c.Labels[0].Label = "__name__" }, "reserved"},
		{"duplicate attribute", func(c *Config) { c.Labels = append(c.Labels, LabelConfig{Attribute: "service", Label: "svc"}) }, `"service" listed twice`},
		{"duplicate label", func(c *Config) { c.Labels = append(c.Labels, LabelConfig{Attribute: "kind"}) }, `"kind" used twice`},
		{"empty attribute", func(c *Config) { c.Labels[2].Attribute = "" }, "labels[2]::attribute"},
		{"too many labels", func(c *Config) {
			for i := range maxLabels {
				c.Labels = append(c.Labels, LabelConfig{Attribute: "a" + string(rune('a'+i))})
			}
		}, "at most 12"},
		{"no rate key", func(c *Config) { c.RateLimit.Key = "" }, "rate_limit::key"},
		{"zero rate", func(c *Config) { c.RateLimit.EventsPerMinute = 0 }, "rate_limit::events_per_minute"},
		{"zero burst", func(c *Config) { c.RateLimit.Burst = 0 }, "rate_limit::burst"},
		{"tiny interval", func(c *Config) { c.RateLimit.SummaryInterval = time.Millisecond }, "rate_limit::summary_interval"},
		{"no sources", func(c *Config) { c.RateLimit.MaxSources = 0 }, "rate_limit::max_sources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mutate(cfg)
			err := confmap.Validate(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A disabled limiter's settings are not checked.
	cfg := valid()
	cfg.RateLimit = RateLimitConfig{}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("disabled rate limit refused: %v", err)
	}
}

func TestPushURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://loki:3100":                              "http://loki:3100/loki/api/v1/push",
		"http://loki:3100/":                             "http://loki:3100/loki/api/v1/push",
		"https://gw.example/tenant-a":                   "https://gw.example/tenant-a/loki/api/v1/push",
		"http://127.0.0.1:9428/insert/loki/api/v1/push": "http://127.0.0.1:9428/insert/loki/api/v1/push",
		"http://loki:3100/loki/api/v1/push?x=1":         "http://loki:3100/loki/api/v1/push?x=1",
	} {
		got, err := pushURL(in)
		if err != nil || got != want {
			t.Errorf("pushURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
