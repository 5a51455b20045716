package collector_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/collector"
)

// TestComponentsNameTheirModules: `bantay-collector components` once
// printed an empty module for probeauth and version strings written by
// hand. The built binary (a test binary carries no dependency versions)
// now names, for every component and config provider, its package and the
// version of its module from the build info.
func TestComponentsNameTheirModules(t *testing.T) {
	out, err := exec.Command(collectorBinary(t), "components").Output()
	if err != nil {
		t.Fatalf("bantay-collector components: %v", err)
	}
	type entry struct {
		Name   string `yaml:"name"`
		Scheme string `yaml:"scheme"`
		Module string `yaml:"module"`
	}
	var listed struct {
		Receivers, Processors, Exporters, Connectors, Extensions, Providers []entry
	}
	if err := yaml.Unmarshal(out, &listed); err != nil {
		t.Fatalf("components output: %v\n%s", err, out)
	}
	modules := map[string]string{}
	for kind, entries := range map[string][]entry{"receivers": listed.Receivers, "processors": listed.Processors,
		"exporters": listed.Exporters, "connectors": listed.Connectors, "extensions": listed.Extensions, "providers": listed.Providers} {
		if len(entries) == 0 {
			t.Errorf("no %s listed", kind)
		}
		for _, e := range entries {
			what := kind + " " + e.Name + e.Scheme
			modules[what] = e.Module
			path, version, ok := strings.Cut(e.Module, " ")
			if !ok || version == "" || !strings.Contains(path, "/") {
				t.Errorf("%s: module %q, want \"<package path> <version>\"", what, e.Module)
			}
		}
	}
	if m := modules["extensions probeauth"]; !strings.HasPrefix(m, "github.com/bantay-noc/bantay/collector/extension/probeauthextension ") {
		t.Errorf("probeauth's module is %q", m)
	}
	if m := modules["receivers otlp"]; !strings.HasPrefix(m, "go.opentelemetry.io/collector/receiver/otlpreceiver v0.") {
		t.Errorf("the otlp receiver's module is %q", m)
	}
	if m := modules["extensions pprof"]; !strings.HasPrefix(m, "github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension v0.") {
		t.Errorf("pprof's module is %q, want the contrib pprofextension", m)
	}
}

// TestPprofIsOffAndLoopback: the distribution includes the contrib pprof
// extension, the shipped configuration does not start it, and its default
// endpoint is loopback only.
func TestPprofIsOffAndLoopback(t *testing.T) {
	f, err := collector.Components()
	if err != nil {
		t.Fatal(err)
	}
	factory, ok := f.Extensions[component.MustNewType("pprof")]
	if !ok {
		t.Fatal("no pprof extension in the distribution")
	}
	if cfg := factory.CreateDefaultConfig().(*pprofextension.Config); cfg.TCPAddr.Endpoint != "localhost:1777" {
		t.Errorf("pprof's default endpoint is %q, want loopback", cfg.TCPAddr.Endpoint)
	}
	shipped, err := os.ReadFile("config/bantay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Extensions map[string]any `yaml:"extensions"`
		Service    struct {
			Extensions []string `yaml:"extensions"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(shipped, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, on := cfg.Extensions["pprof"]; on || slices.Contains(cfg.Service.Extensions, "pprof") {
		t.Error("the shipped configuration turns pprof on; it must stay off by default")
	}
	if !strings.Contains(string(shipped), "#   endpoint: 127.0.0.1:1777") {
		t.Error("the shipped configuration does not show how to turn pprof on, on loopback")
	}
}

// TestComponentMetadataIsGenerated: CI does not run mdatagen, so nothing
// but this test notices a metadata.yaml edited without regenerating. Every
// Bantay component has a metadata.yaml beside its factory; the factory's
// type and stability per signal (taken from the generated
// internal/metadata) are the ones it declares, and the generated
// TelemetryBuilder creates exactly the metrics it lists, under the names
// dashboards and alerts query (prefix + key).
func TestComponentMetadataIsGenerated(t *testing.T) {
	for _, c := range bantayComponents(t) {
		dir := c.dir
		t.Run(c.factory.Type().String(), func(t *testing.T) {
			md := c.metadata(t)
			if md.Type != c.factory.Type().String() {
				t.Errorf("metadata.yaml type %q, factory type %q", md.Type, c.factory.Type())
			}
			for level, signals := range md.Status.Stability {
				for _, signal := range signals {
					if got := stabilityOf(c.factory, signal); !strings.EqualFold(got.String(), level) {
						t.Errorf("%s: metadata.yaml says %s, the factory %v", signal, level, got)
					}
				}
			}
			want := map[string]bool{}
			for _, name := range md.metricNames() {
				want[name] = true
			}
			got := map[string]bool{}
			if gen, err := os.ReadFile(filepath.Join(dir, "internal", "metadata", "generated_telemetry.go")); err == nil {
				for _, m := range generatedMetric.FindAllStringSubmatch(string(gen), -1) {
					got[m[1]] = true
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if !maps.Equal(got, want) {
				t.Errorf("generated telemetry creates %v, metadata.yaml lists %v: run go generate in %s", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), dir)
			}
		})
	}
}

// TestDocsNameComponentMetricsAsServed: the docs once listed
// bantay_failure_events_points_total, bantay_events_receiver_dropped_total
// and bantay_loki_*_total, names nothing serves (the collector's telemetry
// adds no _total). Every name with a component's stem (bantay_citytag_, …)
// in the docs, READMEs, shipped configs, rules and dashboards is a metric
// that component's metadata.yaml declares.
func TestDocsNameComponentMetricsAsServed(t *testing.T) {
	declared := map[string]bool{}
	var stems []string
	for _, c := range bantayComponents(t) {
		names := c.metadata(t).metricNames()
		for _, n := range names {
			declared[n] = true
		}
		if len(names) > 0 {
			stems = append(stems, componentStem(names))
		}
	}
	if len(stems) < 5 {
		t.Fatalf("component metric stems %v: want one per component with telemetry", stems)
	}
	name := regexp.MustCompile(`bantay_[a-z0-9_]+`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if base := d.Name(); base == ".git" || base == "testdata" || base == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md", ".yml", ".yaml", ".json":
		case ".go":
			if !strings.HasPrefix(path, filepath.Join("..", "dashboards")) {
				return nil
			}
		default:
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range name.FindAllString(string(raw), -1) {
			for _, stem := range stems {
				// A name ending in _ is the stem itself, in prose ("bantay_loki_*").
				if strings.HasPrefix(n, stem) && !strings.HasSuffix(n, "_") && !declared[n] {
					t.Errorf("%s names %s, which no component declares (stem %s)", path, n, stem)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// componentStem is the part a component's metric names share, up to an
// underscore: bantay_citytag_ for citytag's; a lone metric's is its name
// without the last word (bantay_events_receiver_).
func componentStem(names []string) string {
	stem := names[0]
	if len(names) == 1 {
		return stem[:strings.LastIndex(stem, "_")+1]
	}
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, stem) {
			stem = stem[:len(stem)-1]
		}
	}
	return stem[:strings.LastIndex(stem, "_")+1]
}

const bantayModule = "github.com/bantay-noc/bantay"

// ownComponent is one of Bantay's own components and its package's folder.
type ownComponent struct {
	factory component.Factory
	dir     string
}

// bantayComponents lists the distribution's components from this module,
// each with the folder its factory is in (relative to this package).
func bantayComponents(t *testing.T) []ownComponent {
	t.Helper()
	factories, err := collector.Components()
	if err != nil {
		t.Fatal(err)
	}
	var ours []ownComponent
	add := func(f component.Factory, module string) {
		pkg, _, _ := strings.Cut(module, " ")
		if rel, ok := strings.CutPrefix(pkg, bantayModule+"/"); ok {
			ours = append(ours, ownComponent{f, filepath.Join("..", rel)})
		}
	}
	for typ, f := range factories.Receivers {
		add(f, factories.ReceiverModules[typ])
	}
	for typ, f := range factories.Processors {
		add(f, factories.ProcessorModules[typ])
	}
	for typ, f := range factories.Exporters {
		add(f, factories.ExporterModules[typ])
	}
	for typ, f := range factories.Connectors {
		add(f, factories.ConnectorModules[typ])
	}
	for typ, f := range factories.Extensions {
		add(f, factories.ExtensionModules[typ])
	}
	if len(ours) < 8 {
		t.Fatalf("%d Bantay components found from their modules, want at least the 8 there are", len(ours))
	}
	return ours
}

// componentMetadata is what these tests read of a metadata.yaml.
type componentMetadata struct {
	Type   string `yaml:"type"`
	Status struct {
		Stability map[string][]string `yaml:"stability"`
	} `yaml:"status"`
	Telemetry struct {
		Metrics map[string]struct {
			Prefix string `yaml:"prefix"`
		} `yaml:"metrics"`
	} `yaml:"telemetry"`
}

func (c ownComponent) metadata(t *testing.T) componentMetadata {
	t.Helper()
	path := filepath.Join(c.dir, "metadata.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var md componentMetadata
	if err := yaml.Unmarshal(raw, &md); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return md
}

// metricNames are the names the generated TelemetryBuilder gives the
// instruments: prefix + key, mdatagen's default prefix being otelcol_.
func (md componentMetadata) metricNames() []string {
	var names []string
	for key, m := range md.Telemetry.Metrics {
		prefix := m.Prefix
		if prefix == "" {
			prefix = "otelcol_"
		}
		names = append(names, prefix+key)
	}
	return names
}

// generatedMetric finds the instrument names in mdatagen's NewTelemetryBuilder.
var generatedMetric = regexp.MustCompile(`builder\.meter\.\w+\(\s*"([^"]+)"`)

// stabilityOf is the factory's stability for a metadata.yaml signal name.
func stabilityOf(f component.Factory, signal string) component.StabilityLevel {
	switch f := f.(type) {
	case receiver.Factory:
		return map[string]component.StabilityLevel{"metrics": f.MetricsStability(), "logs": f.LogsStability(), "traces": f.TracesStability()}[signal]
	case processor.Factory:
		return map[string]component.StabilityLevel{"metrics": f.MetricsStability(), "logs": f.LogsStability(), "traces": f.TracesStability()}[signal]
	case exporter.Factory:
		return map[string]component.StabilityLevel{"metrics": f.MetricsStability(), "logs": f.LogsStability(), "traces": f.TracesStability()}[signal]
	case connector.Factory:
		return map[string]component.StabilityLevel{"metrics_to_logs": f.MetricsToLogsStability(), "metrics_to_metrics": f.MetricsToMetricsStability(),
			"logs_to_logs": f.LogsToLogsStability(), "logs_to_metrics": f.LogsToMetricsStability()}[signal]
	case extension.Factory:
		if signal == "extension" {
			return f.Stability()
		}
	}
	return component.StabilityLevelUndefined
}
