package heatmapexporter

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type() != typeStr || f.Type().String() != "heatmap" {
		t.Fatalf("type %v", f.Type())
	}
	cfg := f.CreateDefaultConfig().(*Config)
	if err := componenttest.CheckConfigStruct(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Extension.String() != "bantay" {
		t.Fatalf("default extension %v, want bantay", cfg.Extension)
	}
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(typeStr), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Capabilities().MutatesData {
		t.Error("the exporter must not claim to mutate data")
	}
}
