package demo

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	shipped "github.com/bantay-noc/bantay/collector/config"
	"github.com/bantay-noc/bantay/dashboards"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
)

// files are the configuration files the demo generates in its data dir,
// every path absolute: Prometheus resolves a relative rule_files entry
// against the folder of the file that names it, and the collector resolves
// ${file:…} against the working directory, so a relative path written for
// one of them is wrong for the other.
type files struct {
	Collector  string            // collector.yaml, from collector/config/bantay.yaml
	Prometheus string            // prometheus.yml, from collector/config/prometheus.yml
	Registry   string            // probes.yaml, citytag's probe registry
	Tokens     string            // probe-tokens.yaml, probe id → SHA-256 of its token
	TokenFiles map[string]string // probe id → the file holding its bearer token
}

// writeConfigs writes the demo's configuration into o.DataDir, which must be
// absolute: the shipped collector and Prometheus configurations with only
// the listeners, paths, probe registry and tokens replaced (and the loki
// exporter and Alertmanager left out when the demo has none), the shipped
// rule files, and a fresh bearer token per simulated probe.
func writeConfigs(o Options, s *sites) (files, error) {
	dir := o.DataDir
	f := files{
		Collector:  filepath.Join(dir, "collector.yaml"),
		Prometheus: filepath.Join(dir, "prometheus.yml"),
		Registry:   filepath.Join(dir, "probes.yaml"),
		Tokens:     filepath.Join(dir, "probe-tokens.yaml"),
		TokenFiles: map[string]string{},
	}
	if !filepath.IsAbs(dir) {
		return f, fmt.Errorf("demo: data dir %q is not absolute", dir)
	}
	if err := writeRegistry(f.Registry, s); err != nil {
		return f, err
	}
	if err := writeTokens(f, filepath.Join(dir, "tokens")); err != nil {
		return f, err
	}
	if err := writePrometheusConfig(f.Prometheus, o); err != nil {
		return f, err
	}
	return f, writeCollectorConfig(f, o)
}

// edit is one change to a shipped YAML document: set the value at a
// "::"-separated key path (the collector's own notation), or delete the key
// when del is set.
type edit struct {
	path  string
	value any
	del   bool
}

func writeCollectorConfig(f files, o Options) error {
	edits := []edit{
		{path: "extensions::health_check::endpoint", value: o.HealthAddr},
		{path: "extensions::probeauth::tokens", value: "${file:" + f.Tokens + "}"},
		{path: "extensions::bantay::endpoint", value: o.HTTPAddr},
		// The demo's listener is on 127.0.0.1 and open, so the page and the README's
		// curl work without a login; the shipped access policy (docs/security.md)
		// is what a deployment runs. The collector warns at start that reads are open.
		{path: "extensions::bantay::access", del: true},
		{path: "extensions::bantay::prometheus_config", value: f.Prometheus},
		{path: "extensions::bantay::storage::path", value: filepath.Join(o.DataDir, "tsdb")},
		{path: "receivers::otlp::protocols::grpc::endpoint", value: o.GRPCAddr},
		{path: "receivers::otlp::protocols::http::endpoint", value: o.OTLPHTTPAddr},
		{path: "processors::citytag::probes", value: "${file:" + f.Registry + "}"},
		{path: "connectors::failure_events::probe_interval", value: o.ProbeInterval.String()},
		{path: "service::telemetry::logs::level", value: "warn"}, // the demo's own banner stays readable
		{path: "service::telemetry::metrics::readers", value: []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{
			"prometheus": map[string]any{"host": "127.0.0.1", "port": o.TelemetryPort}}}}}},
	}
	// The demo's control endpoint (the page's incident button) wraps the
	// bantay extension's handler as a collector HTTP middleware.
	var svc struct {
		Service struct {
			Extensions []string `yaml:"extensions"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal([]byte(shipped.Collector), &svc); err != nil {
		return fmt.Errorf("shipped collector/config/bantay.yaml: %w", err)
	}
	edits = append(edits,
		edit{path: "extensions::" + controlType.String(), value: map[string]any{}},
		edit{path: "extensions::bantay::middlewares", value: []any{map[string]any{"id": controlType.String()}}},
		edit{path: "service::extensions", value: append(svc.Service.Extensions, controlType.String())})
	edits = append(edits, treeEdits("extensions::bantay::heatmap", heatmapOptions(o))...)
	if o.LokiURL != "" {
		edits = append(edits, edit{path: "exporters::loki::endpoint", value: o.LokiURL})
	} else {
		// Without a Loki the events still feed the page (heatmap exporter).
		edits = append(edits, edit{path: "exporters::loki", del: true},
			edit{path: "service::pipelines::logs/events::exporters", value: []string{"heatmap"}})
	}
	return writeEdited(f.Collector, "collector/config/bantay.yaml", shipped.Collector, edits)
}

// heatmapOptions are the heatmap's settings for the demo's probe interval:
// its slots, and a faster path-state judgement: over the page's shortest
// window (1 m, not 5 m) with the hold scaled from the shipped 15 s probes to
// the demo's (30 s → 10 s at 5 s), so a staged incident turns its cell red
// within seconds rather than a minute. The 1 h baseline and the thresholds
// are the shipped ones. The caller's keys (Options.Heatmap) win.
func heatmapOptions(o Options) map[string]any {
	def := heatmap.DefaultConfig()
	hold := time.Duration(float64(def.Aggregation.Events.Hold) * float64(o.ProbeInterval) / float64(def.Aggregation.ProbeInterval))
	hm := map[string]any{
		"resolution": o.ProbeInterval.String(), "probe_interval": o.ProbeInterval.String(),
		"events": map[string]any{"window": slices.Min(def.Aggregation.Windows).String(), "hold": hold.String()},
	}
	maps.Copy(hm, o.Heatmap)
	return hm
}

// writePrometheusConfig writes the shipped rule files into the data dir and
// the shipped prometheus.yml with absolute rule_files (those copies, then
// o.RuleFiles in place, so a caller can rewrite one and reload), the demo's
// self-scrape targets and evaluation interval, and the Alertmanager and
// remote-write receiver if the demo has them.
func writePrometheusConfig(path string, o Options) error {
	var rules []string
	for _, name := range dashboards.RuleFileNames {
		data, err := dashboards.RuleFiles.ReadFile(name)
		if err != nil {
			return err
		}
		dst := filepath.Join(filepath.Dir(path), filepath.Base(name))
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
		rules = append(rules, dst)
	}
	for _, f := range o.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return fmt.Errorf("rule file %s: %w", f, err)
		}
		rules = append(rules, abs)
	}
	// Rules are evaluated every 5 s rather than 15 s, so that the demo's
	// staged incidents reach the alerts quickly (docs/BENCHMARKS.md).
	edits := []edit{
		{path: "global::evaluation_interval", value: "5s"},
		{path: "global::scrape_interval", value: "5s"},
		{path: "rule_files", value: rules},
		{path: "scrape_configs", value: []any{map[string]any{"job_name": "bantay-collector",
			"static_configs": []any{map[string]any{"targets": []string{fmt.Sprintf("127.0.0.1:%d", o.TelemetryPort), o.HTTPAddr}}}}}},
	}
	if am := strings.TrimPrefix(strings.TrimPrefix(o.AlertmanagerURL, "http://"), "https://"); am != "" {
		edits = append(edits, edit{path: "alerting::alertmanagers", value: []any{map[string]any{"api_version": "v2",
			"static_configs": []any{map[string]any{"targets": []string{am}}}}}})
	} else {
		edits = append(edits, edit{path: "alerting", del: true})
	}
	if o.RemoteWriteURL != "" {
		edits = append(edits, edit{path: "remote_write", value: []any{map[string]any{"url": o.RemoteWriteURL}}})
	}
	return writeEdited(path, "collector/config/prometheus.yml", shipped.Prometheus, edits)
}

// registryProbe is one probe of citytag's registry, in the shape of
// collector/config/probes.yaml.
type registryProbe struct {
	City      string           `yaml:"city"`
	Reflector string           `yaml:"reflector,omitempty"`
	Uplinks   []registryUplink `yaml:"uplinks"`
}

type registryUplink struct {
	Carrier     string `yaml:"carrier"`
	NetworkType string `yaml:"network_type"`
}

// writeRegistry writes citytag's registry for the simulated probes. Each
// site's reflector is the impairing proxy in front of it, which is how the
// mesh registry sends every probe through the simulated network.
func writeRegistry(path string, s *sites) error {
	reg := map[string]*registryProbe{}
	for _, u := range netsim.DemoUplinks() {
		p := reg[u.Probe]
		if p == nil {
			p = &registryProbe{City: u.City, Reflector: s.byCity[u.City].ReflectorAddr}
			reg[u.Probe] = p
		}
		p.Uplinks = append(p.Uplinks, registryUplink{u.Carrier, u.NetworkType})
	}
	data, err := yaml.Marshal(reg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte("# The demo's simulated probes (internal/demo/netsim), in the shape of collector/config/probes.yaml.\n"), data...), 0o644)
}

// writeTokens gives every simulated probe a new random bearer token, in a
// file of its own under tokenDir (what a probe's collector.token_file names),
// and writes their SHA-256 hashes to f.Tokens, as an operator would
// (README, "Give every probe a credential").
func writeTokens(f files, tokenDir string) error {
	if err := os.MkdirAll(tokenDir, 0o700); err != nil {
		return fmt.Errorf("create token dir: %w", err)
	}
	hashes := map[string]string{}
	for _, u := range netsim.DemoUplinks() {
		if _, done := hashes[u.Probe]; done {
			continue
		}
		token := rand.Text()
		sum := sha256.Sum256([]byte(token))
		hashes[u.Probe] = hex.EncodeToString(sum[:])
		f.TokenFiles[u.Probe] = filepath.Join(tokenDir, u.Probe+".token")
		if err := os.WriteFile(f.TokenFiles[u.Probe], []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("probe %s token: %w", u.Probe, err)
		}
	}
	data, err := yaml.Marshal(hashes)
	if err != nil {
		return err
	}
	return os.WriteFile(f.Tokens, append([]byte("# probe id → SHA-256 of the token in tokens/<probe id>.token; new at every demo start.\n"), data...), 0o600)
}

// treeEdits sets every leaf of a nested map under path, so the shipped
// file's other keys at each level stay.
func treeEdits(path string, tree map[string]any) []edit {
	var out []edit
	for _, k := range slices.Sorted(maps.Keys(tree)) {
		if sub, ok := tree[k].(map[string]any); ok {
			out = append(out, treeEdits(path+"::"+k, sub)...)
			continue
		}
		out = append(out, edit{path: path + "::" + k, value: tree[k]})
	}
	return out
}

// writeEdited applies edits to the shipped YAML document src (named name)
// and writes it to path. It edits the YAML tree rather than a decoded map so
// that the shipped file's comments, which explain every setting, stay in
// the generated one.
func writeEdited(path, name, src string, edits []edit) error {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil || len(doc.Content) != 1 {
		return fmt.Errorf("shipped %s: not a YAML document: %v", name, err)
	}
	for _, e := range edits {
		if err := e.apply(doc.Content[0]); err != nil {
			return fmt.Errorf("shipped %s: %s: %w", name, e.path, err)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by the Bantay demo from %s. What differs: listeners, paths, the\n"+
		"# probe registry and tokens, timings for the demo's faster probes, the demo's incident endpoint, an open\n"+
		"# listener on 127.0.0.1 instead of the access policy, and Loki and the Alertmanager when the demo has none\n"+
		"# (docs/decisions.md, \"The demo runs the shipped configuration\").\n", name)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// apply walks the mapping m along e.path, creating missing keys, and sets or
// deletes the last one.
func (e edit) apply(m *yaml.Node) error {
	keys := strings.Split(e.path, "::")
	for i, k := range keys {
		if m.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping", strings.Join(keys[:i], "::"))
		}
		at := -1
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == k {
				at = j
				break
			}
		}
		last := i == len(keys)-1
		switch {
		case last && e.del:
			if at >= 0 {
				m.Content = slices.Delete(m.Content, at, at+2)
			}
			return nil
		case at < 0:
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"})
			at = len(m.Content) - 2
		}
		if last {
			var v yaml.Node
			if err := v.Encode(e.value); err != nil {
				return err
			}
			v.LineComment = m.Content[at+1].LineComment
			*m.Content[at+1] = v
			return nil
		}
		m = m.Content[at+1]
	}
	return nil
}
