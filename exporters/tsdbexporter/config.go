package tsdbexporter

import (
	"errors"

	"go.opentelemetry.io/collector/component"
)

// Config names the extension that owns the store.
type Config struct {
	// Extension is the ID of the `bantay` extension whose TSDB this exporter
	// appends to.
	Extension component.ID `mapstructure:"extension"`
}

// Validate checks that an extension is named.
func (cfg *Config) Validate() error {
	if cfg.Extension.Type().String() == "" {
		return errors.New("extension: must name the bantay extension that owns the store")
	}
	return nil
}
