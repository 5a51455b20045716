package citytagprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/hosttest"
)

// gazetteerSink records what citytag hands over at Start.
type gazetteerSink struct {
	component.StartFunc
	component.ShutdownFunc
	from component.ID
	gaz  *gazetteer.Gazetteer
}

func (s *gazetteerSink) SetGazetteer(from component.ID, g *gazetteer.Gazetteer) {
	s.from, s.gaz = from, g
}

// TestStartHandsTheGazetteerToTheExtension: the operator's cities reach
// the extension that draws them, with the processor's id.
func TestStartHandsTheGazetteerToTheExtension(t *testing.T) {
	cfg := testConfig()
	tagum := gazetteer.City{Name: "Tagum", Region: "Davao Region", IslandGroup: gazetteer.Mindanao,
		Latitude: 7.4478, Longitude: 125.8078, Aliases: []string{"Tagum City"}}
	cfg.Cities = []gazetteer.City{tagum}
	set := processortest.NewNopSettings(componentType)
	set.ID = component.MustNewIDWithName(TypeStr, "edge")
	p, err := NewFactory().CreateMetrics(context.Background(), set, cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	sink := &gazetteerSink{}
	require.NoError(t, p.Start(context.Background(), hosttest.Host{component.MustNewID("bantay"): sink}))
	defer func() { require.NoError(t, p.Shutdown(context.Background())) }()

	assert.Equal(t, set.ID, sink.from)
	require.NotNil(t, sink.gaz)
	c, ok := sink.gaz.City("Tagum City")
	assert.True(t, ok)
	assert.Equal(t, tagum, c)
	_, ok = sink.gaz.City("Davao")
	assert.True(t, ok, "the shipped cities are still there")
}
