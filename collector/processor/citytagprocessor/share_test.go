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
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
)

// TestStartHandsTheGazetteerToTheExtension: the operator's cities reach
// the extension that draws them, with the processor's id.
func TestStartHandsTheGazetteerToTheExtension(t *testing.T) {
	cfg := testConfig()
	tagum := gazetteer.City{Name: "Tagum", Region: "Davao Region", IslandGroup: gazetteer.Mindanao,
		Latitude: 7.4478, Longitude: 125.8078, Aliases: []string{"Tagum City"}}
	cfg.Cities = []gazetteer.City{tagum}
	set := processortest.NewNopSettings(metadata.Type)
	set.ID = component.NewIDWithName(metadata.Type, "edge")
	p, err := NewFactory().CreateMetrics(context.Background(), set, cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	bantay := &hosttest.Provider{}
	require.NoError(t, p.Start(context.Background(), hosttest.With(bantay)))
	defer func() { require.NoError(t, p.Shutdown(context.Background())) }()

	gaz := bantay.Shared(set.ID)
	require.NotNil(t, gaz, "shared under the processor's id")
	c, ok := gaz.City("Tagum City")
	assert.True(t, ok)
	assert.Equal(t, tagum, c)
	_, ok = gaz.City("Davao")
	assert.True(t, ok, "the shipped cities are still there")
}

// TestStartErrorNamesTheMissingExtension: a citytag whose extension is not
// in the collector fails to start saying so; `extension: ""` runs it alone.
func TestStartErrorNamesTheMissingExtension(t *testing.T) {
	for _, tc := range []struct {
		ext  component.ID
		host hosttest.Host
		want string
	}{
		{component.MustNewID("bantay"), hosttest.Host{}, `citytag processor citytag: extension "bantay" is not configured`},
		{component.MustNewIDWithName("bantay", "b"), hosttest.With(&hosttest.Provider{}), `extension "bantay/b" is not configured`},
		{component.MustNewID("bantay"), hosttest.Host{component.MustNewID("bantay"): notBantay{}}, `extension "bantay" is a citytagprocessor.notBantay, not the bantay extension`},
		{component.ID{}, hosttest.Host{}, ""},
	} {
		cfg := testConfig()
		cfg.Extension = tc.ext
		p, err := NewFactory().CreateMetrics(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, new(consumertest.MetricsSink))
		require.NoError(t, err)
		err = p.Start(context.Background(), tc.host)
		if tc.want == "" {
			assert.NoError(t, err)
		} else {
			assert.ErrorContains(t, err, tc.want)
		}
		require.NoError(t, p.Shutdown(context.Background()))
	}
}

type notBantay struct {
	component.StartFunc
	component.ShutdownFunc
}
