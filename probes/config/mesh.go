package config

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/internal/meshreg"
)

// Mesh mode defaults.
const (
	DefaultMeshRefresh = time.Minute
	// DefaultMeshPort is the port of the collector's HTTP listener (the
	// bantay extension's, 8080 in the shipped config), where the mesh
	// registry is served.
	DefaultMeshPort = "8080"
	// MinMeshRefresh bounds how often a fleet asks the collector.
	MinMeshRefresh = time.Second
)

// DefaultMeshMethods are what a mesh probe measures other sites with (as
// far as each site's registry entry says it answers them).
var DefaultMeshMethods = []string{meshreg.MethodUDP, meshreg.MethodICMP}

// Mesh is mesh mode: the probe takes targets from the collector's mesh
// registry, every other registered site's reflector addresses, and
// measures them on every uplink besides its own targets. `mesh: true`
// turns it on with the defaults; a mapping turns it on with its settings.
type Mesh struct {
	Enabled bool `yaml:"-"`
	// Collector is the base URL of the collector's HTTP listener
	// (http://host:8080); default: the OTLP endpoint's host, port 8080,
	// https unless collector.tls.insecure. The probe's token, TLS client
	// certificate and CA are the ones it sends OTLP with.
	Collector string `yaml:"collector"`
	// Refresh is how often the registry is fetched: a site added or
	// removed is measured, or no longer, within one refresh.
	Refresh time.Duration `yaml:"refresh"`
	// Methods are what other sites are measured with (udp, icmp), each
	// only where the site's registry entry says it answers it.
	Methods []string `yaml:"methods"`
}

// UnmarshalYAML takes `mesh: true|false` or a mapping of the settings,
// refusing unknown keys as the rest of the file does.
func (m *Mesh) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var on bool
		if err := n.Decode(&on); err != nil {
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: mesh: want true, false or a mapping of collector, refresh, methods; got %q", n.Line, n.Value)}}
		}
		*m = Mesh{Enabled: on}
		return nil
	}
	if n.Kind == yaml.MappingNode {
		// A custom unmarshaler's Decode does not inherit the strict
		// decoder's known-fields check; the error is worded as yaml's so
		// that it is reported by path like any other unknown key.
		t := reflect.TypeFor[Mesh]()
		var errs []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !hasYAMLField(t, k.Value) {
				errs = append(errs, fmt.Sprintf("line %d: field %s not found in type config.Mesh", k.Line, k.Value))
			}
		}
		if errs != nil {
			return &yaml.TypeError{Errors: errs}
		}
	}
	type plain Mesh // without this method
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*m = Mesh(p)
	m.Enabled = true
	return nil
}

func hasYAMLField(t reflect.Type, name string) bool {
	_, ok := fieldByTag(t, name)
	return ok
}

// Reflector is the probe's own UDP echo reflector, which other sites
// measure (the address they reach it at is in the collector's registry).
type Reflector struct {
	// Listen is host:port to answer echo probes on (0.0.0.0:7001); empty:
	// no reflector.
	Listen string `yaml:"listen"`
}

func (m *Mesh) validate(v *validator, c Collector) {
	if !m.Enabled {
		if m.Collector != "" || m.Refresh != 0 || m.Methods != nil {
			v.add("mesh", "is off but has settings")
		}
		return
	}
	if m.Refresh == 0 {
		m.Refresh = DefaultMeshRefresh
	}
	if m.Refresh < MinMeshRefresh {
		v.add("mesh.refresh", "%s is shorter than %s", m.Refresh, MinMeshRefresh)
	}
	if m.Methods == nil {
		m.Methods = DefaultMeshMethods
	}
	if len(m.Methods) == 0 {
		v.add("mesh.methods", "is empty; list udp, icmp or both")
	} else if err := meshreg.CheckMethods(m.Methods); err != nil {
		v.add("mesh.methods", "%v", strings.TrimPrefix(err.Error(), ": "))
	}
	if m.Collector == "" {
		m.Collector = defaultMeshURL(c)
		return
	}
	u, err := url.Parse(m.Collector)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add("mesh.collector", "%q is not an http:// or https:// URL of the collector's listener (http://host:8080)", m.Collector)
	case u.Scheme == "http" && !c.TLS.Insecure:
		v.add("mesh.collector", "%q is plain http but collector.tls.insecure is false: the probe's token would cross the network readable", m.Collector)
	}
}

// defaultMeshURL is the collector's listener on the OTLP endpoint's host.
func defaultMeshURL(c Collector) string {
	host := c.Endpoint
	if u, err := url.Parse(c.Endpoint); err == nil && u.Host != "" {
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	scheme := "https"
	if c.TLS.Insecure {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(host, DefaultMeshPort)
}

// MeshTargets are the targets a mesh registry answer gives this probe: one
// per site, reflector address and method that the site answers and the
// probe measures with, on the defaults' interval and timeout, validated
// as a target in the file is. A site entry the probe cannot use (a city its
// gazetteer does not know, a bad address) is left out and its problem
// returned; one that duplicates a target of the file (same name, or same
// method and address) is left out silently: the file's target measures it.
func (c *Config) MeshTargets(a meshreg.Answer) ([]Target, []error) {
	gaz, err := c.gazetteer()
	if err != nil {
		return nil, []error{err} // Validate refused this config already
	}
	taken := map[string]bool{}
	measured := map[[2]string]bool{}
	for _, t := range c.Targets {
		taken[t.Name] = true
		measured[[2]string{t.Method, t.Address}] = true
	}
	var out []Target
	var errs []error
	for _, site := range a.Sites {
		if site.Probe == c.Probe.ID {
			continue
		}
		for _, r := range site.Reflectors {
			for _, method := range c.Mesh.Methods {
				if !slices.Contains(site.Methods, method) {
					continue
				}
				t, err := meshTarget(site, r, method)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if taken[t.Name] || measured[[2]string{t.Method, t.Address}] {
					continue
				}
				v := &validator{gaz: gaz}
				t.validate(v, t.Name, c.Defaults, taken)
				if len(v.probs) > 0 {
					p := v.probs[0]
					errs = append(errs, fmt.Errorf("site %s: %s: %s", site.Probe, strings.TrimPrefix(p.Path, t.Name+"."), p.Message))
					continue
				}
				measured[[2]string{t.Method, t.Address}] = true
				out = append(out, t)
			}
		}
	}
	return out, errs
}

// meshTarget is the target of one reflector address of a site, named
// mesh-<probe>[-<carrier>-<network type>]-<method> so that a site's
// targets stay the same series while it is registered.
func meshTarget(site meshreg.Site, r meshreg.Reflector, method string) (Target, error) {
	if err := meshreg.CheckAddress(r.Address); err != nil {
		return Target{}, fmt.Errorf("site %s: reflector %w", site.Probe, err)
	}
	name := "mesh-" + site.Probe
	if r.Carrier != "" || r.NetworkType != "" {
		name += "-" + r.Carrier + "-" + r.NetworkType
	}
	t := Target{Name: name + "-" + method, DstCity: site.City, Method: method, Address: r.Address}
	if method == meshreg.MethodICMP {
		t.Address, _, _ = net.SplitHostPort(r.Address) // CheckAddress parsed it
	}
	return t, nil
}
