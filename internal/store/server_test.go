package store

import (
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServerEvaluatesRulesFromAPrometheusConfig(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "tsdb"))
	defer s.Close()
	rules := filepath.Join(dir, "rules.yml")
	require.NoError(t, os.WriteFile(rules, []byte(`groups:
  - name: test
    interval: 1s
    rules:
      - record: path:count
        expr: sum(network_latency_milliseconds_count)
`), 0o644))
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("rule_files: [rules.yml]\n"), 0o644))

	srv, err := NewServer(s, cfg, &url.URL{Scheme: "http", Host: "localhost"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer srv.Stop()
	groups := srv.APIDeps().Rules.RuleGroups()
	require.Len(t, groups, 1)
	assert.Equal(t, "test", groups[0].Name())
	assert.Equal(t, time.Second, groups[0].Interval())

	// A broken rule file is refused on reload, naming the file; the old rules stay.
	require.NoError(t, os.WriteFile(rules, []byte("groups: [{name: x, rules: [{record: y, expr: 'sum(('}]}]\n"), 0o644))
	err = srv.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "prometheus.yml")
	assert.Contains(t, err.Error(), "rules.yml", "the broken rule file is named")
	assert.Len(t, srv.APIDeps().Rules.RuleGroups(), 1)
}

func TestServerWithoutConfigFileRunsNoRules(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	srv, err := NewServer(s, "", &url.URL{Scheme: "http", Host: "localhost"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer srv.Stop()
	assert.Empty(t, srv.APIDeps().Rules.RuleGroups())
}

func TestServerRefusesAMissingConfigFile(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	_, err := NewServer(s, "/nonexistent/prometheus.yml", &url.URL{Scheme: "http", Host: "localhost"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/nonexistent/prometheus.yml")
}

// A rule_files pattern that matches nothing is refused, naming the pattern
// as Prometheus resolved it (against the config file's folder): Prometheus
// itself accepts it silently and then evaluates no rules, which is how a
// relative path written from the wrong directory leaves every alert dead.
// On reload the rules in force stay.
func TestServerRefusesARuleFilePatternThatMatchesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "tsdb"))
	defer s.Close()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("rule_files: [data/rules-*.yml]\n"), 0o644))
	reg := prometheus.NewRegistry()
	_, err := NewServer(s, cfg, &url.URL{Scheme: "http", Host: "localhost"}, reg, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "data", "rules-*.yml"), "the resolved pattern is named")
	assert.Contains(t, err.Error(), "matches no file")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(`groups:
  - name: test
    rules:
      - record: path:count
        expr: sum(network_latency_milliseconds_count)
`), 0o644))
	require.NoError(t, os.WriteFile(cfg, []byte("rule_files: [rules.yml]\n"), 0o644))
	srv, err := NewServer(s, cfg, &url.URL{Scheme: "http", Host: "localhost"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer srv.Stop()
	require.NoError(t, os.WriteFile(cfg, []byte("rule_files: [rules.yml, missing/*.yml]\n"), 0o644))
	err = srv.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "missing", "*.yml"))
	assert.Len(t, srv.APIDeps().Rules.RuleGroups(), 1, "the rules in force stay")
}
