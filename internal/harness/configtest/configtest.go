// Package configtest loads a collector component's configuration the way
// the collector does, for the component's own tests: the section of
// testdata/config.yaml named by the component's id, unmarshalled over the
// factory's defaults, then validated.
package configtest

import (
	"fmt"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// Load returns the configuration of factory's component named name ("" for
// the bare type) from testdata/config.yaml, and the validation error. A
// missing file or a section that does not decode fails the test.
func Load[C any](t testing.TB, factory component.Factory, name string) (*C, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	id := component.NewIDWithName(factory.Type(), name)
	sub, err := cm.Sub(id.String())
	if err != nil {
		t.Fatalf("section %s: %v", id, err)
	}
	cfg, ok := factory.CreateDefaultConfig().(*C)
	if !ok {
		t.Fatalf("%s: default config is %T, not *%T", id, factory.CreateDefaultConfig(), *new(C))
	}
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

// FromFile returns factory's default configuration with its field key
// included from a file holding yamlFile, as `key: ${file:…}` does in a
// collector config, and the validation error. An error decoding the file
// is returned as decodeErr: the collector refuses such a file before any
// component sees it.
func FromFile[C any](factory component.Factory, key string, yamlFile []byte) (cfg *C, validateErr, decodeErr error) {
	r, err := confmap.NewRetrievedFromYAML(yamlFile)
	if err != nil {
		return nil, nil, err
	}
	raw, err := r.AsRaw()
	if err != nil {
		return nil, nil, err
	}
	cfg, ok := factory.CreateDefaultConfig().(*C)
	if !ok {
		return nil, nil, fmt.Errorf("default config is %T, not *%T", factory.CreateDefaultConfig(), *new(C))
	}
	if err := confmap.NewFromStringMap(map[string]any{key: raw}).Unmarshal(cfg); err != nil {
		return nil, nil, err
	}
	return cfg, confmap.Validate(cfg), nil
}
