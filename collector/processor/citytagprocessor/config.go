package citytagprocessor

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Config is the citytag processor's configuration.
//
// The probe registry is the authority: a probe's city comes from here, never
// from what the probe says about itself, and a probe may only report on the
// uplinks listed for it. Keep a large registry in its own file and include it
// with the collector's file provider: `probes: ${file:/etc/bantay/probes.yaml}`.
type Config struct {
	// Extension names the bantay extension citytag publishes rejection
	// events to and shares its gazetteer with (default "bantay"). Empty runs
	// citytag alone: rejections are still counted and logged.
	Extension component.ID `mapstructure:"extension"`

	// Probes maps a probe id (the OTLP resource attribute service.instance.id) to its place.
	Probes map[string]ProbeEntry `mapstructure:"probes"`

	// Cities, Carriers and NetworkTypes extend the shipped gazetteer. An entry
	// whose name matches a shipped one replaces it.
	Cities       []gazetteer.City `mapstructure:"cities"`
	Carriers     []gazetteer.Term `mapstructure:"carriers"`
	NetworkTypes []gazetteer.Term `mapstructure:"network_types"`

	// MaxLatencyMs is the largest believable latency. Larger values (and
	// negative or NaN ones) are rejected as invalid rather than stored.
	MaxLatencyMs float64 `mapstructure:"max_latency_ms"`

	// LogInterval bounds how often a rejection is logged (and published as an
	// event) per (reason, probe, uplink).
	LogInterval time.Duration `mapstructure:"log_interval"`

	// RequireAuthenticatedProbe rejects data that did not come with a probe
	// credential (the probeauth extension on the OTLP receiver). Whether or
	// not it is set, data that did come with one is accepted only for the
	// probe the credential belongs to.
	RequireAuthenticatedProbe bool `mapstructure:"require_authenticated_probe"`

	// Limits bound what one probe can put into the store (limits.go).
	Limits LimitsConfig `mapstructure:"limits"`

	// Timestamps bound how far a point's time may be from the collector's
	// clock (timestamps.go).
	Timestamps TimestampsConfig `mapstructure:"timestamps"`
}

// TimestampsConfig bounds point times around the collector's clock. A
// point outside is rejected (timestamp_in_future, timestamp_too_old): keep
// max_ahead + max_age within the store's out_of_order_window (30m by
// default), so that no point citytag lets through can make the store
// refuse another probe's current data.
type TimestampsConfig struct {
	// MaxAhead is how far ahead of the collector's clock a point may be:
	// the clock error tolerated of a probe.
	MaxAhead time.Duration `mapstructure:"max_ahead"`
	// MaxAge is how far behind the collector's clock a point may be: a
	// probe's late delivery (a retry, a short outage) is stored, older
	// data would be refused by the store anyway.
	MaxAge time.Duration `mapstructure:"max_age"`
}

// LimitsConfig holds the per-probe limits, modelled on Prometheus's scrape
// limits and Mimir's per-tenant series limit. 0 disables a limit. What
// exceeds one is rejected, counted and reported like any other rejection.
type LimitsConfig struct {
	// MaxSeriesPerProbe is how many series a probe may have active, counted
	// as the store counts them (a latency histogram point is 31). A point
	// of a series the probe already has always goes on; one that would
	// start a series beyond the limit is rejected (series_limit).
	MaxSeriesPerProbe int `mapstructure:"max_series_per_probe"`

	// SeriesIdle is how long a series no point has come for still counts.
	SeriesIdle time.Duration `mapstructure:"series_idle"`

	// MaxPointAttributes is how many attributes a point may have after
	// tagging, citytag's nine canonical labels included (attribute_limit).
	MaxPointAttributes int `mapstructure:"max_point_attributes"`

	// MaxAttributeNameLength and MaxAttributeValueLength bound, in bytes,
	// the names and values of a point's and a resource's attributes, and
	// the metric name (attribute_name_too_long, attribute_value_too_long).
	MaxAttributeNameLength  int `mapstructure:"max_attribute_name_length"`
	MaxAttributeValueLength int `mapstructure:"max_attribute_value_length"`
}

// ProbeEntry is one registered probe.
type ProbeEntry struct {
	City    string   `mapstructure:"city"`
	Uplinks []Uplink `mapstructure:"uplinks"`
	// Reflector is host:port at which other sites reach this probe's
	// reflector, for mesh mode (mesh.go); an uplink's own reflector takes
	// its place for that uplink. Without any, the probe measures but is
	// not measured by the mesh.
	Reflector string `mapstructure:"reflector"`
	// ReflectorMethods are the methods the reflector addresses answer
	// (udp, icmp); default udp, the reflector itself.
	ReflectorMethods []string `mapstructure:"reflector_methods"`
}

// Uplink is a (carrier, network type) pair a probe is allowed to report on.
type Uplink struct {
	Carrier     string `mapstructure:"carrier"`
	NetworkType string `mapstructure:"network_type"`
	// Reflector is host:port of the probe's reflector as reached over
	// this uplink (its SIM's or line's own public address).
	Reflector string `mapstructure:"reflector"`
}

// Validate checks the registry against the (extended) gazetteer so that a
// typo in a city or carrier fails at start-up, not as rejected data later.
func (cfg *Config) Validate() error {
	_, _, err := cfg.build()
	return err
}

// build resolves the configuration into the gazetteer and registry the
// processor runs with.
func (cfg *Config) build() (*gazetteer.Gazetteer, map[string]registeredProbe, error) {
	if !(cfg.MaxLatencyMs > 0) {
		return nil, nil, fmt.Errorf("max_latency_ms: must be positive, got %v", cfg.MaxLatencyMs)
	}
	if cfg.LogInterval <= 0 {
		return nil, nil, fmt.Errorf("log_interval: must be positive, got %v", cfg.LogInterval)
	}
	if cfg.Timestamps.MaxAhead <= 0 {
		return nil, nil, fmt.Errorf("timestamps::max_ahead: must be positive (a point ahead of the collector's clock "+
			"moves the store's time forward for every probe), got %v", cfg.Timestamps.MaxAhead)
	}
	if cfg.Timestamps.MaxAge <= 0 {
		return nil, nil, fmt.Errorf("timestamps::max_age: must be positive, got %v", cfg.Timestamps.MaxAge)
	}
	gaz, err := gazetteer.Extend(cfg.Cities, cfg.Carriers, cfg.NetworkTypes)
	if err != nil {
		return nil, nil, fmt.Errorf("gazetteer: %w", err)
	}
	if len(cfg.Probes) == 0 {
		return nil, nil, errors.New("probes: the registry is empty; every probe must be registered with its city and uplinks")
	}
	reg := make(map[string]registeredProbe, len(cfg.Probes))
	for id, p := range cfg.Probes {
		field := fmt.Sprintf("probes::%s", id)
		// The probe checks its own id with the same function.
		if err := metricmodel.CheckProbeID(id); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", field, err)
		}
		city, ok := gaz.City(p.City)
		if !ok {
			return nil, nil, fmt.Errorf("%s::city: unknown city %q (add it under cities)", field, p.City)
		}
		if len(p.Uplinks) == 0 {
			return nil, nil, fmt.Errorf("%s::uplinks: at least one uplink (carrier, network_type) is required", field)
		}
		rp := registeredProbe{id: id, city: city, uplinks: make(map[uplinkKey]struct{}, len(p.Uplinks))}
		for i, u := range p.Uplinks {
			carrier, ok := gaz.Carrier(u.Carrier)
			if !ok {
				return nil, nil, fmt.Errorf("%s::uplinks[%d]::carrier: unknown carrier %q", field, i, u.Carrier)
			}
			nt, ok := gaz.NetworkType(u.NetworkType)
			if !ok {
				return nil, nil, fmt.Errorf("%s::uplinks[%d]::network_type: unknown network type %q", field, i, u.NetworkType)
			}
			rp.uplinks[uplinkKey{carrier, nt}] = struct{}{}
		}
		if rp.mesh, err = meshSite(field, id, city.Name, p, gaz); err != nil {
			return nil, nil, err
		}
		reg[id] = rp
	}
	if err := cfg.Limits.validate(gaz, reg); err != nil {
		return nil, nil, err
	}
	return gaz, reg, nil
}

// validate refuses limits that would reject what Bantay's own probes send,
// or what citytag itself sets, so that a typo fails at start-up rather than
// as every probe's data rejected later.
func (l LimitsConfig) validate(gaz *gazetteer.Gazetteer, reg map[string]registeredProbe) error {
	switch {
	case l.MaxSeriesPerProbe < 0 || (l.MaxSeriesPerProbe > 0 && l.MaxSeriesPerProbe < metricmodel.SeriesPerTarget):
		return fmt.Errorf("limits::max_series_per_probe: must be 0 (no limit) or at least %d, the series of one target "+
			"(its latency histogram and counters), got %d", metricmodel.SeriesPerTarget, l.MaxSeriesPerProbe)
	case l.MaxSeriesPerProbe > 0 && l.SeriesIdle <= 0:
		return fmt.Errorf("limits::series_idle: must be positive with max_series_per_probe set (a series counts until "+
			"no point has come for it this long), got %v", l.SeriesIdle)
	case l.MaxPointAttributes < 0 || (l.MaxPointAttributes > 0 && l.MaxPointAttributes < metricmodel.PointAttributes):
		return fmt.Errorf("limits::max_point_attributes: must be 0 (no limit) or at least %d, what a probe's failure "+
			"counter carries after tagging (target, method, reason and citytag's nine labels), got %d",
			metricmodel.PointAttributes, l.MaxPointAttributes)
	case l.MaxAttributeNameLength < 0:
		return fmt.Errorf("limits::max_attribute_name_length: must be 0 (no limit) or positive, got %d", l.MaxAttributeNameLength)
	case l.MaxAttributeValueLength < 0 || (l.MaxAttributeValueLength > 0 && l.MaxAttributeValueLength < metricmodel.MaxNameLength):
		return fmt.Errorf("limits::max_attribute_value_length: must be 0 (no limit) or at least %d, the longest target "+
			"or uplink name a probe accepts, got %d", metricmodel.MaxNameLength, l.MaxAttributeValueLength)
	}
	if n := l.MaxAttributeNameLength; n > 0 {
		for _, name := range []string{attrServiceNamespace, attrProbeID, metricmodel.ResourceEnvironment, labelDstIslandGroup} {
			if len(name) > n {
				return fmt.Errorf("limits::max_attribute_name_length: %d is shorter than %q, an attribute name probes send or citytag sets", n, name)
			}
		}
	}
	if n := l.MaxAttributeValueLength; n > 0 {
		// Every value citytag sets: the registry's probe ids and uplinks, the gazetteer's cities.
		check := func(what, v string) error {
			if len(v) > n {
				return fmt.Errorf("limits::max_attribute_value_length: %d is shorter than %s %q (%d bytes), a value citytag sets", n, what, v, len(v))
			}
			return nil
		}
		for _, c := range gaz.Cities() {
			for _, e := range []error{check("city", c.Name), check("region", c.Region), check("island group", c.IslandGroup)} {
				if e != nil {
					return e
				}
			}
		}
		for id, p := range reg {
			if err := check("probe id", id); err != nil {
				return err
			}
			for u := range p.uplinks {
				if err := check("carrier", u.carrier); err != nil {
					return err
				}
				if err := check("network type", u.networkType); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
