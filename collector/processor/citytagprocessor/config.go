package citytagprocessor

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Config is the citytag processor's configuration.
//
// The probe registry is the authority: a probe's city comes from here, never
// from what the probe says about itself, and a probe may only report on the
// uplinks listed for it. Keep a large registry in its own file and include it
// with the collector's file provider: `probes: ${file:/etc/bantay/probes.yaml}`.
type Config struct {
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
}

// ProbeEntry is one registered probe.
type ProbeEntry struct {
	City    string   `mapstructure:"city"`
	Uplinks []Uplink `mapstructure:"uplinks"`
}

// Uplink is a (carrier, network type) pair a probe is allowed to report on.
type Uplink struct {
	Carrier     string `mapstructure:"carrier"`
	NetworkType string `mapstructure:"network_type"`
}

var probeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

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
		if !probeIDPattern.MatchString(id) {
			return nil, nil, fmt.Errorf("%s: probe id must match %s", field, probeIDPattern)
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
		reg[id] = rp
	}
	return gaz, reg, nil
}
