package citytagprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/meshreg"
)

// TestStartSharesTheMeshRegistry: at its Start citytag hands the bantay
// extension the mesh registry of its probe registry: only probes with a
// reflector, names canonical, methods defaulting to the reflector's udp.
func TestStartSharesTheMeshRegistry(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Probes = map[string]ProbeEntry{
		"mnl-01": {City: "NCR", Reflector: "mnl-01.example.ph:7001", Uplinks: []Uplink{
			{Carrier: "Globe Telecom", NetworkType: "NR", Reflector: "[2001:db8::1]:7001"},
			{Carrier: "PLDT", NetworkType: "fiber"}}},
		"bag-01": {City: "Baguio", Uplinks: []Uplink{{Carrier: "Smart", NetworkType: "4g"}}},
	}
	require.NoError(t, cfg.Validate())
	set := processortest.NewNopSettings(metadata.Type)
	p, _, err := newProcessor(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	owner := &hosttest.Provider{}
	require.NoError(t, p.Start(context.Background(), hosttest.With(owner)))
	defer func() { require.NoError(t, p.Shutdown(context.Background())) }()
	assert.Equal(t, []meshreg.Site{{Probe: "mnl-01", City: "Manila", Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{
		{Address: "mnl-01.example.ph:7001"},
		{Address: "[2001:db8::1]:7001", Carrier: "Globe", NetworkType: "5g"},
	}}}, owner.SharedMesh(component.NewID(metadata.Type)))
}
