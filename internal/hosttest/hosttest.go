// Package hosttest is, for component tests, a collector host with the
// extensions the test gives it — among them, if asked, one that owns an
// event bus as the bantay extension does (citytag and probeauth find it by
// its Events method).
package hosttest

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

// WithBus returns a host whose extension "bantay" owns bus.
func WithBus(bus *events.Bus) Host {
	return Host{component.MustNewID("bantay"): Owner{Bus: bus}}
}
