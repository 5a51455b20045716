package citytagprocessor

import (
	"fmt"
	"maps"
	"slices"

	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/meshreg"
)

// meshSite is what the mesh registry says of probe id (field is its path
// in the config, for errors): its city and the reflector addresses other
// sites measure it at, a site-wide one and those of its uplinks. The
// registry is where a probe's place is stated once, so its reflector is
// stated here too rather than in a second file that could disagree. nil
// when the probe has no reflector.
func meshSite(field, id, city string, p ProbeEntry, gaz *gazetteer.Gazetteer) (*meshreg.Site, error) {
	site := &meshreg.Site{Probe: id, City: city, Methods: p.ReflectorMethods}
	if p.Reflector != "" {
		if err := meshreg.CheckAddress(p.Reflector); err != nil {
			return nil, fmt.Errorf("%s::reflector: %w", field, err)
		}
		site.Reflectors = append(site.Reflectors, meshreg.Reflector{Address: p.Reflector})
	}
	for i, u := range p.Uplinks {
		if u.Reflector == "" {
			continue
		}
		if err := meshreg.CheckAddress(u.Reflector); err != nil {
			return nil, fmt.Errorf("%s::uplinks[%d]::reflector: %w", field, i, err)
		}
		// Validated by the caller before this runs.
		carrier, _ := gaz.Carrier(u.Carrier)
		nt, _ := gaz.NetworkType(u.NetworkType)
		site.Reflectors = append(site.Reflectors, meshreg.Reflector{Address: u.Reflector, Carrier: carrier, NetworkType: nt})
	}
	if err := meshreg.CheckMethods(p.ReflectorMethods); err != nil {
		return nil, fmt.Errorf("%s::reflector_methods%w", field, err)
	}
	if len(site.Reflectors) == 0 {
		if len(p.ReflectorMethods) > 0 {
			return nil, fmt.Errorf("%s::reflector_methods: set, but the probe has no reflector address (reflector, or an uplink's reflector)", field)
		}
		return nil, nil
	}
	if len(site.Methods) == 0 {
		site.Methods = meshreg.DefaultMethods
	}
	return site, nil
}

// meshSites are the registered probes that have a reflector, by probe id.
func meshSites(probes map[string]registeredProbe) []meshreg.Site {
	var out []meshreg.Site
	for _, id := range slices.Sorted(maps.Keys(probes)) {
		if s := probes[id].mesh; s != nil {
			out = append(out, *s)
		}
	}
	return out
}
