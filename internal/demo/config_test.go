package demo

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/config"
)

// The generated prometheus.yml is one Prometheus itself accepts, with the
// remote-write receiver and the caller's rule files (after the shipped ones)
// when they are asked for.
func TestPrometheusConfigRemoteWriteAndRuleFiles(t *testing.T) {
	dir := t.TempDir()
	extra := filepath.Join(dir, "extra.yml")
	if err := os.WriteFile(extra, []byte("groups: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	opts.RemoteWriteURL = "http://127.0.0.1:9/api/v1/write"
	opts.AlertmanagerURL = "http://127.0.0.1:9093"
	opts.RuleFiles = []string{extra}
	path, err := writePrometheusConfig(dir, opts.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(path, false, promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("Prometheus rejects the generated config: %v", err)
	}
	if len(cfg.RemoteWriteConfigs) != 1 || cfg.RemoteWriteConfigs[0].URL.String() != opts.RemoteWriteURL {
		t.Errorf("remote_write = %v, want one entry for %s", cfg.RemoteWriteConfigs, opts.RemoteWriteURL)
	}
	if n := len(cfg.RuleFiles); n < 2 || cfg.RuleFiles[n-1] != extra {
		t.Errorf("rule_files = %v, want the shipped files then %s", cfg.RuleFiles, extra)
	}

	// Without the options the file has neither.
	opts.RemoteWriteURL, opts.RuleFiles = "", nil
	path, err = writePrometheusConfig(dir, opts.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = config.LoadFile(path, false, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RemoteWriteConfigs) != 0 || slices.Contains(cfg.RuleFiles, extra) {
		t.Errorf("remote_write %v, rule_files %v without the options", cfg.RemoteWriteConfigs, cfg.RuleFiles)
	}
}
