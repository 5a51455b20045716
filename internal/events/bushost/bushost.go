// Package bushost is, for tests, a collector host whose extensions include
// one that owns an event bus, as the bantay extension does; components that
// publish on the bus (citytag, probeauth) find it by its Events method.
package bushost

import (
	"go.opentelemetry.io/collector/component"

	"github.com/bantay-noc/bantay/internal/events"
)

// Owner is an extension providing Events() *events.Bus.
type Owner struct {
	component.StartFunc
	component.ShutdownFunc
	Bus *events.Bus
}

// Events returns the bus.
func (o Owner) Events() *events.Bus { return o.Bus }

// Host is a component.Host with the given extensions.
type Host map[component.ID]component.Component

// GetExtensions returns the extensions.
func (h Host) GetExtensions() map[component.ID]component.Component { return h }

// New returns a host whose extension "bantay" owns bus.
func New(bus *events.Bus) Host {
	return Host{component.MustNewID("bantay"): Owner{Bus: bus}}
}
