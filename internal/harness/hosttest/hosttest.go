// Package hosttest is, for component tests, a collector host with the
// extensions the test gives it — among them, if asked, a stand-in for the
// bantay extension (sharedstate.Provider) with only the parts a test needs.
package hosttest

import (
	"sync"

	"go.opentelemetry.io/collector/component"

	"github.com/bantay-noc/bantay/collector/sharedstate"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/meshreg"
)

// Provider stands in for the bantay extension: each part is what the test
// sets (nil: that part is off). It records the gazetteers and mesh registries shared with it.
type Provider struct {
	component.StartFunc
	component.ShutdownFunc
	TSDB sharedstate.Store
	Map  sharedstate.Heatmap
	Bus  *events.Bus

	mu     sync.Mutex
	shared map[component.ID]*gazetteer.Gazetteer
	mesh   map[component.ID][]meshreg.Site
}

var _ sharedstate.Provider = (*Provider)(nil)

// Store returns TSDB.
func (p *Provider) Store() sharedstate.Store { return p.TSDB }

// Heatmap returns Map.
func (p *Provider) Heatmap() sharedstate.Heatmap { return p.Map }

// Events returns Bus.
func (p *Provider) Events() *events.Bus { return p.Bus }

// ShareGazetteer records g as shared by from.
func (p *Provider) ShareGazetteer(from component.ID, g *gazetteer.Gazetteer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shared == nil {
		p.shared = map[component.ID]*gazetteer.Gazetteer{}
	}
	p.shared[from] = g
}

// ShareMesh records sites as shared by from.
func (p *Provider) ShareMesh(from component.ID, sites []meshreg.Site) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mesh == nil {
		p.mesh = map[component.ID][]meshreg.Site{}
	}
	p.mesh[from] = sites
}

// SharedMesh returns the mesh registry from shared, or nil.
func (p *Provider) SharedMesh(from component.ID) []meshreg.Site {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mesh[from]
}

// Shared returns the gazetteer from shared, or nil.
func (p *Provider) Shared(from component.ID) *gazetteer.Gazetteer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shared[from]
}

// Host is a component.Host with the given extensions.
type Host map[component.ID]component.Component

// GetExtensions returns the extensions.
func (h Host) GetExtensions() map[component.ID]component.Component { return h }

// With returns a host whose extension "bantay" is p.
func With(p *Provider) Host { return Host{sharedstate.DefaultID: p} }

// WithBus returns a host whose extension "bantay" provides bus alone.
func WithBus(bus *events.Bus) Host { return With(&Provider{Bus: bus}) }
