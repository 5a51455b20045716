package heatmapexporter

import (
	"context"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/exporters/heatmapexporter/internal/metadata"
	"github.com/bantay-noc/bantay/heatmap"
	"go.opentelemetry.io/collector/confmap"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type() != metadata.Type || f.Type().String() != "heatmap" {
		t.Fatalf("type %v", f.Type())
	}
	cfg := f.CreateDefaultConfig().(*Config)
	if err := componenttest.CheckConfigStruct(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Extension.String() != "bantay" {
		t.Fatalf("default extension %v, want bantay", cfg.Extension)
	}
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Capabilities().MutatesData {
		t.Error("the exporter must not claim to mutate data")
	}
}

// TestHeatmapConfigUnmarshals checks that heatmap.Config, which the bantay
// extension embeds in its own config, decodes from collector YAML.
func TestHeatmapConfigUnmarshals(t *testing.T) {
	if err := componenttest.CheckConfigStruct(heatmap.Config{}); err != nil {
		t.Fatal(err)
	}
	var cfg heatmap.Config
	err := confmap.NewFromStringMap(map[string]any{
		"resolution": "10s", "windows": []any{"1m", "5m"}, "default_window": "1m",
		"allowed_origins": []any{"https://noc.example"}, "events": map[string]any{"window": "5m", "hold": "1m"},
	}).Unmarshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := cfg.Aggregation; a.Resolution != 10*time.Second || len(a.Windows) != 2 || a.Events.Hold != time.Minute || len(cfg.Hub.AllowedOrigins) != 1 {
		t.Fatalf("decoded %+v", cfg)
	}
}
