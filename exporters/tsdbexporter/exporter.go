package tsdbexporter

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/collector/sharedstate"
)

type tsdbExporter struct {
	cfg   *Config
	store sharedstate.Store
}

func (e *tsdbExporter) start(_ context.Context, host component.Host) error {
	p, err := sharedstate.Find(host, e.cfg.Extension, "tsdb exporter")
	if err != nil {
		return err
	}
	if e.store = p.Store(); e.store == nil {
		return fmt.Errorf("tsdb exporter: extension %q has not opened its store", e.cfg.Extension)
	}
	return nil
}

func (e *tsdbExporter) push(ctx context.Context, md pmetric.Metrics) error {
	return e.store.AppendMetrics(ctx, md)
}
