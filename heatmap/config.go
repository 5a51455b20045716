package heatmap

import (
	"errors"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/rebuild"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Config configures the heatmap: its aggregation and its websocket hub. In
// the collector's configuration both are one flat `heatmap:` section
// (docs/heatmap.md). The zero value of every field means "use the
// default"; DefaultConfig spells them out.
type Config struct {
	// Aggregation: resolution, history, windows, staleness, limits, bucket
	// bounds and the path state change thresholds (events).
	Aggregation aggregate.Config `mapstructure:",squash"`
	// Hub: the websocket protocol's limits, timeouts and access control.
	Hub hub.Config `mapstructure:",squash"`
	// Rebuild: what the rebuild after a start holds of the live points.
	Rebuild rebuild.Config `mapstructure:",squash"`

	// Gazetteer places cities on the wall (region, island group,
	// coordinates, north-to-south order) and canonicalises carrier and
	// network type filters; nil means gazetteer.Default(). It is only the
	// starting point: Heatmap.SetGazetteer replaces it while running, which
	// is how the collector's citytag processor hands over the gazetteer it
	// tags with (the shipped one plus the operator's cities).
	Gazetteer *gazetteer.Gazetteer `mapstructure:"-"`
}

// DefaultConfig returns the configuration used for every zero field.
func DefaultConfig() Config {
	return Config{Aggregation: aggregate.DefaultConfig(), Hub: hub.DefaultConfig(), Rebuild: rebuild.DefaultConfig()}
}

// withDefaults fills every zero field from DefaultConfig.
func (c Config) withDefaults() Config {
	c.Aggregation = c.Aggregation.WithDefaults()
	c.Hub = c.Hub.WithDefaults()
	c.Rebuild = c.Rebuild.WithDefaults()
	if c.Gazetteer == nil {
		c.Gazetteer = gazetteer.Default()
	}
	return c
}

// Validate reports every invalid field by its configuration name. Zero
// fields are valid: they take defaults.
func (c Config) Validate() error {
	_, winErr := c.Hub.DefaultWindowIn(c.Aggregation.WithDefaults().Windows)
	return errors.Join(c.Aggregation.Validate(), winErr, c.Hub.Validate(), c.Rebuild.Validate())
}
