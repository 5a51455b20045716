package collector_test

import (
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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
}
