package heatmapexporter

import (
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/bantay-noc/bantay/exporters/heatmapexporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id      component.ID
		want    component.ID
		wantErr string
	}{
		{id: component.NewID(metadata.Type), want: component.MustNewID("bantay")},
		{id: component.NewIDWithName(metadata.Type, "wall"), want: component.MustNewIDWithName("bantay", "wall")},
		{id: component.NewIDWithName(metadata.Type, "empty"), wantErr: "extension"},
		{id: component.NewIDWithName(metadata.Type, "blocking"), wantErr: "sending_queue::block_on_overflow"},
		{id: component.NewIDWithName(metadata.Type, "parallel"), wantErr: "sending_queue::num_consumers"},
		{id: component.NewIDWithName(metadata.Type, "noqueue"), wantErr: "sending_queue: must be enabled"},
	} {
		t.Run(tc.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			sub, err := cm.Sub(tc.id.String())
			if err != nil {
				t.Fatal(err)
			}
			err = sub.Unmarshal(cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Extension != tc.want {
				t.Fatalf("extension %v, want %v", cfg.Extension, tc.want)
			}
		})
	}
}

func TestUnknownFieldRejected(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	err := confmap.NewFromStringMap(map[string]any{"extention": "bantay"}).Unmarshal(cfg)
	if err == nil || !strings.Contains(err.Error(), "extention") {
		t.Fatalf("got %v, want an error naming the misspelt key", err)
	}
}

func TestValidateRequiresExtension(t *testing.T) {
	if err := (&Config{QueueConfig: createDefaultConfig().(*Config).QueueConfig}).Validate(); err == nil || !strings.Contains(err.Error(), "extension: must name") {
		t.Fatalf("zero config: %v", err)
	}
}
