package heatmapexporter

import (
	"errors"

	"go.opentelemetry.io/collector/component"
)

// Config configures the heatmap exporter. The heatmap itself (windows,
// websocket settings) is configured on the extension that owns it.
type Config struct {
	// Extension names the extension that provides the heatmap, i.e. one
	// implementing `Heatmap() *heatmap.Heatmap` (Bantay's "bantay" extension).
	Extension component.ID `mapstructure:"extension"`
}

var _ component.Config = (*Config)(nil)

// Validate checks that an extension is named.
func (c *Config) Validate() error {
	if c.Extension.Type().String() == "" {
		return errors.New("extension: must name the extension that provides the heatmap (e.g. bantay)")
	}
	return nil
}
