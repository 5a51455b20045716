package citytagprocessor

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bantay-noc/bantay/internal/harness/configtest"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory(), name)
}

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)

	assert.Equal(t, 30000.0, cfg.MaxLatencyMs)
	assert.Equal(t, LimitsConfig{MaxSeriesPerProbe: 30000, SeriesIdle: 2 * time.Hour, MaxPointAttributes: 16,
		MaxAttributeNameLength: 128, MaxAttributeValueLength: 256}, cfg.Limits, "limits not set keep their defaults")
	assert.Equal(t, TimestampsConfig{MaxAhead: 2 * time.Minute, MaxAge: 25 * time.Minute}, cfg.Timestamps)
	gaz, reg, err := cfg.build()
	require.NoError(t, err)
	assert.Equal(t, "Manila", reg["mnl-01"].city.Name, "registry aliases resolve to canonical cities")
	assert.Contains(t, reg["mnl-01"].uplinks, uplinkKey{"PLDT", "fiber"})
	assert.Contains(t, reg["mnl-01"].uplinks, uplinkKey{"Globe", "5g"})
	assert.Equal(t, "Mindanao", reg["dvo-01"].city.IslandGroup)
	pps, ok := gaz.City("pps")
	require.True(t, ok, "operator-added cities extend the shipped gazetteer")
	assert.Equal(t, "MIMAROPA", pps.Region)
	_, ok = gaz.City("Baguio")
	assert.True(t, ok, "shipped cities remain when the operator adds one")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for name, want := range map[string]string{
		"bad_city":                  `probes::x-01::city: unknown city "Atlantis"`,
		"bad_carrier":               `probes::x-01::uplinks[0]::carrier: unknown carrier "Verizon"`,
		"no_uplinks":                `probes::x-01::uplinks: at least one uplink`,
		"empty":                     `probes: the registry is empty`,
		"bad_limits":                fmt.Sprintf("limits::max_series_per_probe: must be 0 (no limit) or at least %d", metricmodel.SeriesPerTarget),
		"bad_timestamps":            `timestamps::max_ahead: must be positive`,
		"bad_reflector":             `probes::x-01::uplinks[0]::reflector: "203.0.113.5" is not host:port`,
		"bad_site_reflector":        `probes::x-01::reflector: "203.0.113.5:99999": port "99999" is not a number from 1 to 65535`,
		"bad_reflector_method":      `probes::x-01::reflector_methods[1]: "http" is not one of [udp icmp]`,
		"methods_without_reflector": `probes::x-01::reflector_methods: set, but the probe has no reflector address`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
		})
	}
}

func TestConfigRejectsBadLimits(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Probes = map[string]ProbeEntry{"p1": {City: "Manila", Uplinks: []Uplink{{Carrier: "Globe", NetworkType: "4g"}}}}
	require.NoError(t, cfg.Validate())
	cfg.MaxLatencyMs = 0
	assert.ErrorContains(t, cfg.Validate(), "max_latency_ms")
	cfg.MaxLatencyMs = 1000
	cfg.Probes["bad id with spaces"] = cfg.Probes["p1"]
	assert.ErrorContains(t, cfg.Validate(), `probe id "bad id with spaces" must start with a letter or digit`)
}

func TestConfigRejectsAmbiguousAlias(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Probes = map[string]ProbeEntry{"p1": {City: "Manila", Uplinks: []Uplink{{Carrier: "Globe", NetworkType: "4g"}}}}
	// "Davao City" already means Davao; a new city may not claim it.
	cfg.Cities = append(cfg.Cities, cityFixture("Tagum", "Davao City"))
	assert.ErrorContains(t, cfg.Validate(), `name "Davao City" is already used by city "Davao"`)
}
