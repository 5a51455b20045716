package citytagprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"

	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// gazetteerUser is implemented by the bantay extension: it takes the
// gazetteer citytag tags with (the shipped one extended by citytag's
// cities, carriers and network types), so the heatmap places a city the
// operator added here with its region, island group and coordinates. from
// is the citytag processor's id (a collector may run more than one).
type gazetteerUser interface {
	SetGazetteer(from component.ID, g *gazetteer.Gazetteer)
}

// startFunc hands the effective gazetteer to every extension that takes
// one, then starts the tagger. Extensions start before processors, so the
// extension is up; the receivers (including bantay_events, which reads
// the heatmap's gazetteer at its own start) start after every processor.
func (t *cityTagger) startFunc(id component.ID) component.StartFunc {
	return func(ctx context.Context, host component.Host) error {
		for _, ext := range host.GetExtensions() {
			if u, ok := ext.(gazetteerUser); ok {
				u.SetGazetteer(id, t.gaz)
			}
		}
		return t.start(ctx, host)
	}
}
