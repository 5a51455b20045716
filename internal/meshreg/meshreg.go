// Package meshreg is the mesh registry as the collector serves it to
// probes: which sites exist, where, and at which reflector addresses they
// can be measured. The collector's citytag processor builds it from its
// probe registry (the authority for every probe's place) and the bantay
// extension serves it on its listener at Path; a probe with `mesh:` fetches
// it and measures every other site. It holds only what a probe needs to
// measure, never a credential. Standard library only: the probe imports it
// and must not link the collector.
package meshreg

import (
	"fmt"
	"net"
	"slices"
	"strconv"
)

// Path is where the bantay extension serves the registry. GET it with the
// probe's own bearer token (the one it sends OTLP with).
const Path = "/api/mesh/v1/sites"

// Methods a site's reflector addresses answer.
const (
	MethodUDP  = "udp"  // the Bantay UDP echo reflector at the address
	MethodICMP = "icmp" // ICMP echo to the address's host
)

// Methods are the methods a mesh can measure with.
var Methods = []string{MethodUDP, MethodICMP}

// DefaultMethods are what a site answers when its registry entry does not
// say: the reflector, which is what a mesh site promises to run. ICMP is
// added where the site's firewall lets it through.
var DefaultMethods = []string{MethodUDP}

// Answer is the body of a GET of Path.
type Answer struct {
	// Probe is the probe the request's token belongs to.
	Probe string `json:"probe"`
	// Sites are every other registered probe with a reflector address, by
	// probe id.
	Sites []Site `json:"sites"`
}

// Site is one registered probe that can be measured.
type Site struct {
	Probe string `json:"probe"`
	// City is the gazetteer's canonical name of the probe's city.
	City string `json:"city"`
	// Methods are the methods its reflector addresses answer.
	Methods []string `json:"methods"`
	// Reflectors are the addresses its reflector is reached at: one for
	// the whole site, or one per uplink (each SIM or line its own address).
	Reflectors []Reflector `json:"reflectors"`
}

// Reflector is one address of a site's reflector.
type Reflector struct {
	// Address is host:port of the UDP echo reflector; ICMP goes to host.
	Address string `json:"address"`
	// Carrier and NetworkType name the site's uplink the address is on;
	// empty for a site-wide address.
	Carrier     string `json:"carrier,omitempty"`
	NetworkType string `json:"network_type,omitempty"`
}

// CheckAddress says why a is not a reflector address (host:port, a port
// from 1 to 65535), or nil. The collector checks the registry with it and
// the probe what it is served.
func CheckAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", a, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", a, port)
	}
	return nil
}

// CheckMethods says why ms is not a list of mesh methods, or nil.
func CheckMethods(ms []string) error {
	for i, m := range ms {
		if !slices.Contains(Methods, m) {
			return fmt.Errorf("[%d]: %q is not one of %v", i, m, Methods)
		}
		if slices.Index(ms, m) != i {
			return fmt.Errorf("[%d]: %q is listed twice", i, m)
		}
	}
	return nil
}
