package collector_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"go.opentelemetry.io/collector/component"
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
