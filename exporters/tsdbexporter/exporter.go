package tsdbexporter

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/store"
)

// storeOwner is implemented by the bantay extension.
type storeOwner interface {
	Store() *store.Store
}

type tsdbExporter struct {
	cfg   *Config
	store *store.Store
}

func (e *tsdbExporter) start(_ context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[e.cfg.Extension]
	if !ok {
		return fmt.Errorf("extension %q is not configured; add it under extensions and service.extensions", e.cfg.Extension)
	}
	owner, ok := ext.(storeOwner)
	if !ok {
		return fmt.Errorf("extension %q does not own a Bantay store (it is a %T)", e.cfg.Extension, ext)
	}
	if e.store = owner.Store(); e.store == nil {
		return fmt.Errorf("extension %q has not opened its store", e.cfg.Extension)
	}
	return nil
}

func (e *tsdbExporter) push(ctx context.Context, md pmetric.Metrics) error {
	return e.store.AppendMetrics(ctx, md)
}
