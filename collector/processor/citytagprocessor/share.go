package citytagprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"

	"github.com/bantay-noc/bantay/collector/sharedstate"
)

// startFunc finds the bantay extension named in the config, hands it the
// effective gazetteer (the shipped one extended by citytag's cities,
// carriers and network types, so the heatmap places a city the operator
// added here) and the mesh registry (mesh.go), gives its event bus to the
// tagger, then starts the tagger. A reload of the registry rebuilds the
// processor, whose Start shares the new one.
// Extensions start before processors, so the extension is up; the
// receivers (including bantay_events, which reads the heatmap's gazetteer
// at its own start) start after every processor.
func (t *cityTagger) startFunc(id component.ID, ext component.ID) component.StartFunc {
	return func(ctx context.Context, host component.Host) error {
		if ext != (component.ID{}) {
			p, err := sharedstate.Find(host, ext, "citytag processor "+id.String())
			if err != nil {
				return err
			}
			p.ShareGazetteer(id, t.gaz)
			p.ShareMesh(id, meshSites(t.probes))
			t.bus = p.Events()
		}
		return t.start(ctx, host)
	}
}
