package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/config"
	"go.opentelemetry.io/collector/otelcol"
	"go.yaml.in/yaml/v3"

	shipped "github.com/bantay-noc/bantay/collector/config"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
)

// The generated prometheus.yml is one Prometheus itself accepts, with the
// remote-write receiver and the caller's rule files (after the shipped ones)
// when they are asked for, and every rule file path absolute.
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
	path := filepath.Join(dir, "prometheus.yml")
	if err := writePrometheusConfig(path, opts.withDefaults()); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(path, false, promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("Prometheus rejects the generated config: %v", err)
	}
	if len(cfg.RemoteWriteConfigs) != 1 || cfg.RemoteWriteConfigs[0].URL.String() != opts.RemoteWriteURL {
		t.Errorf("remote_write = %v, want one entry for %s", cfg.RemoteWriteConfigs, opts.RemoteWriteURL)
	}
	if n := len(cfg.RuleFiles); n != 3 || cfg.RuleFiles[n-1] != extra {
		t.Errorf("rule_files = %v, want the two shipped files then %s", cfg.RuleFiles, extra)
	}
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
	if n := len(cfg.AlertingConfig.AlertmanagerConfigs); n != 1 {
		t.Errorf("%d Alertmanager configs, want 1", n)
	}

	// Without the options the file has neither, and no Alertmanager.
	opts.RemoteWriteURL, opts.RuleFiles, opts.AlertmanagerURL = "", nil, ""
	if err := writePrometheusConfig(path, opts.withDefaults()); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.LoadFile(path, false, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RemoteWriteConfigs) != 0 || slices.Contains(cfg.RuleFiles, extra) || len(cfg.AlertingConfig.AlertmanagerConfigs) != 0 {
		t.Errorf("remote_write %v, rule_files %v, alerting %v without the options", cfg.RemoteWriteConfigs, cfg.RuleFiles, cfg.AlertingConfig)
	}
}

// The demo's collector configuration is the shipped one: the same
// pipelines, processors and extensions (probeauth on both OTLP protocols,
// citytag requiring an authenticated probe, the mesh registry), with a token
// hash for every simulated probe and each site's reflector in the registry,
// and the collector accepts it.
func TestCollectorConfigIsTheShippedPipeline(t *testing.T) {
	opts := testOptions(t).withDefaults()
	opts.LokiURL = "http://127.0.0.1:9/insert/loki/api/v1/push"
	s := &sites{byCity: map[string]site{}}
	for i, city := range netsim.DemoCities() {
		s.byCity[city] = site{ReflectorAddr: fmt.Sprintf("127.0.0.1:%d", 7001+i)}
	}
	f, err := writeConfigs(opts, s)
	if err != nil {
		t.Fatal(err)
	}
	gen, want := readYAML(t, f.Collector), map[string]any{}
	if err := yaml.Unmarshal([]byte(shipped.Collector), &want); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"service::pipelines",
		"receivers::otlp::protocols::grpc::auth", "receivers::otlp::protocols::http::auth",
		"processors::memory_limiter", "processors::citytag::require_authenticated_probe", "processors::citytag::limits",
		"processors::delta_to_cumulative", "extensions::bantay::storage::retention", "extensions::bantay::query",
		"extensions::bantay::mesh",
	} {
		if g, w := at(gen, path), at(want, path); !equalYAML(t, g, w) || w == nil {
			t.Errorf("%s = %v, shipped %v", path, g, w)
		}
	}

	if g, w := at(gen, "service::extensions"), append(at(want, "service::extensions").([]any), controlType.String()); !equalYAML(t, g, w) {
		t.Errorf("service::extensions = %v, want the shipped ones and the demo's control endpoint: %v", g, w)
	}

	for _, u := range netsim.DemoUplinks() {
		if got, want := at(readYAML(t, f.Registry), u.Probe+"::reflector"), s.byCity[u.City].ReflectorAddr; got != want {
			t.Errorf("registry: %s's reflector %v, want its site's %s", u.Probe, got, want)
		}
	}

	hashes := readYAML(t, f.Tokens)
	if len(f.TokenFiles) != 3 || len(hashes) != len(f.TokenFiles) {
		t.Fatalf("token files %v, hashes %v: want one per simulated probe", f.TokenFiles, hashes)
	}
	for id, file := range f.TokenFiles {
		token, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(string(token))))
		if hashes[id] != hex.EncodeToString(sum[:]) {
			t.Errorf("probe %s: hash %v is not the SHA-256 of its token file", id, hashes[id])
		}
	}

	col, err := otelcol.NewCollector(settings(f.Collector, http.NotFoundHandler()))
	if err != nil {
		t.Fatal(err)
	}
	if err := col.DryRun(context.Background()); err != nil {
		t.Fatalf("the collector rejects the generated config: %v", err)
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// at is the value at a "::"-separated key path, nil if absent.
func at(m map[string]any, path string) any {
	var v any = m
	for k := range strings.SplitSeq(path, "::") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}
