// Package sharedstate is the contract between the bantay extension and the
// pipeline components that use what it owns: the store, the live heatmap,
// the event bus and the gazetteer the heatmap places cities with. The
// extension implements Provider; every component finds it the same way,
// by the id in its `extension:` setting (default "bantay"), with Find.
//
// The interfaces are narrow on purpose, as Prometheus's storage.Appendable
// is: a component sees only the calls it makes, and a processor that only
// publishes events does not link the TSDB or the websocket hub through
// this package (internal/harness/archtest checks the latter).
package sharedstate

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/heatmap/wire"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/meshreg"
)

// DefaultID is the extension every component looks for unless its
// `extension:` setting names another.
var DefaultID = component.MustNewID("bantay")

// Store takes a request's metrics and returns only once they are stored
// (a nil error means in the WAL); its errors are the answer to the sender.
type Store interface {
	AppendMetrics(ctx context.Context, md pmetric.Metrics) error
}

// Heatmap is the live heatmap as the pipeline feeds and follows it.
type Heatmap interface {
	// Observe takes one latency histogram or counter point.
	Observe(p *aggregate.Point)
	// PublishEvents shows events in the pages' event feed.
	PublishEvents(items []wire.FeedEvent)
	// Subscribe calls fn for every path state change.
	Subscribe(fn func(pathstate.Event))
	// Gazetteer is the gazetteer the heatmap places cities with.
	Gazetteer() *gazetteer.Gazetteer
}

// Provider is what the bantay extension provides. A part that is switched
// off in the extension's config is nil.
type Provider interface {
	Store() Store
	Heatmap() Heatmap
	Events() *events.Bus
	// ShareGazetteer hands the gazetteer a citytag processor (from) tags
	// with to the heatmap, so a city the operator added there is placed.
	ShareGazetteer(from component.ID, g *gazetteer.Gazetteer)
	// ShareMesh hands the mesh registry a citytag processor (from) built
	// from its probe registry to the listener's mesh endpoint, so probes
	// in mesh mode learn the sites to measure from the same registry that
	// places their points.
	ShareMesh(from component.ID, sites []meshreg.Site)
}

// Find returns the Provider with id among host's extensions. The error
// names the component asking (who) and says what to fix.
func Find(host component.Host, id component.ID, who string) (Provider, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("%s: extension %q is not configured; add it under extensions and service.extensions, "+
			"or name the bantay extension in this component's `extension:` setting", who, id)
	}
	p, ok := ext.(Provider)
	if !ok {
		return nil, fmt.Errorf("%s: extension %q is a %T, not the bantay extension", who, id, ext)
	}
	return p, nil
}
