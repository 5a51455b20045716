// Package gazetteer is Bantay's reference of Philippine places, carriers and
// network types: the canonical spelling of each, the aliases people and
// configs actually use, and where each city sits (region, island group,
// coordinates). The collector's citytag processor uses it as the authority
// for location tags; the probe uses it to validate its own config early.
package gazetteer

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Island groups of the Philippines, in the order the UI lists them (north to south).
const (
	Luzon    = "Luzon"
	Visayas  = "Visayas"
	Mindanao = "Mindanao"
)

// IslandGroupOrder ranks island groups north to south so that matrices and
// maps list Luzon cities first and Mindanao cities last.
var IslandGroupOrder = map[string]int{Luzon: 0, Visayas: 1, Mindanao: 2}

// City is one canonical place.
type City struct {
	Name        string   `mapstructure:"name" yaml:"name" json:"name"`
	Region      string   `mapstructure:"region" yaml:"region" json:"region"`
	IslandGroup string   `mapstructure:"island_group" yaml:"island_group" json:"island_group"`
	Latitude    float64  `mapstructure:"latitude" yaml:"latitude" json:"latitude"`
	Longitude   float64  `mapstructure:"longitude" yaml:"longitude" json:"longitude"`
	Aliases     []string `mapstructure:"aliases" yaml:"aliases" json:"aliases,omitempty"`
}

// Term is a canonical name with its aliases (a carrier or a network type).
type Term struct {
	Name    string   `mapstructure:"name" yaml:"name" json:"name"`
	Aliases []string `mapstructure:"aliases" yaml:"aliases" json:"aliases,omitempty"`
}

// DefaultCities is the shipped gazetteer. Operators extend or override it in
// the citytag processor's config.
var DefaultCities = []City{
	{Name: "Manila", Region: "NCR", IslandGroup: Luzon, Latitude: 14.5995, Longitude: 120.9842,
		Aliases: []string{"Metro Manila", "NCR", "City of Manila", "Maynila", "MNL", "National Capital Region"}},
	{Name: "Quezon City", Region: "NCR", IslandGroup: Luzon, Latitude: 14.6760, Longitude: 121.0437,
		Aliases: []string{"QC", "Lungsod Quezon"}},
	{Name: "Baguio", Region: "CAR", IslandGroup: Luzon, Latitude: 16.4023, Longitude: 120.5960,
		Aliases: []string{"Baguio City", "City of Baguio", "BAG"}},
	{Name: "Angeles", Region: "Central Luzon", IslandGroup: Luzon, Latitude: 15.1450, Longitude: 120.5887,
		Aliases: []string{"Angeles City", "Clark"}},
	{Name: "Legazpi", Region: "Bicol", IslandGroup: Luzon, Latitude: 13.1391, Longitude: 123.7438,
		Aliases: []string{"Legazpi City", "Legaspi"}},
	{Name: "Cebu", Region: "Central Visayas", IslandGroup: Visayas, Latitude: 10.3157, Longitude: 123.8854,
		Aliases: []string{"Cebu City", "City of Cebu", "CEB"}},
	{Name: "Iloilo", Region: "Western Visayas", IslandGroup: Visayas, Latitude: 10.7202, Longitude: 122.5621,
		Aliases: []string{"Iloilo City", "ILO"}},
	{Name: "Bacolod", Region: "Negros Island Region", IslandGroup: Visayas, Latitude: 10.6765, Longitude: 122.9509,
		Aliases: []string{"Bacolod City"}},
	{Name: "Tacloban", Region: "Eastern Visayas", IslandGroup: Visayas, Latitude: 11.2440, Longitude: 125.0039,
		Aliases: []string{"Tacloban City"}},
	{Name: "Davao", Region: "Davao Region", IslandGroup: Mindanao, Latitude: 7.1907, Longitude: 125.4553,
		Aliases: []string{"Davao City", "City of Davao", "DVO", "Dabaw"}},
	{Name: "Cagayan de Oro", Region: "Northern Mindanao", IslandGroup: Mindanao, Latitude: 8.4542, Longitude: 124.6319,
		Aliases: []string{"CDO", "Cagayan de Oro City"}},
	{Name: "Zamboanga", Region: "Zamboanga Peninsula", IslandGroup: Mindanao, Latitude: 6.9214, Longitude: 122.0790,
		Aliases: []string{"Zamboanga City"}},
	{Name: "General Santos", Region: "Soccsksargen", IslandGroup: Mindanao, Latitude: 6.1164, Longitude: 125.1716,
		Aliases: []string{"GenSan", "General Santos City"}},
}

// DefaultCarriers are the Philippine carriers Bantay knows out of the box.
var DefaultCarriers = []Term{
	{Name: "Globe", Aliases: []string{"Globe Telecom", "TM", "Globe At Home"}},
	{Name: "Smart", Aliases: []string{"Smart Communications", "TNT", "Sun"}},
	{Name: "DITO", Aliases: []string{"DITO Telecommunity", "Dito Telecom"}},
	{Name: "PLDT", Aliases: []string{"PLDT Home", "PLDT Fibr", "Philippine Long Distance Telephone"}},
	{Name: "Converge", Aliases: []string{"Converge ICT", "Converge FiberX"}},
}

// DefaultNetworkTypes are the access technologies a probe uplink can declare.
var DefaultNetworkTypes = []Term{
	{Name: "4g", Aliases: []string{"LTE", "4G LTE", "LTE-A"}},
	{Name: "5g", Aliases: []string{"NR", "5G NR", "5G SA", "5G NSA"}},
	{Name: "fiber", Aliases: []string{"fibre", "FTTH", "GPON"}},
	{Name: "wifi", Aliases: []string{"Wi-Fi", "WLAN", "802.11"}},
}

// Key folds a name to the form used for matching: case-insensitive, with
// runs of spaces, dots, underscores and hyphens treated as one space and
// everything else that is not a letter or digit dropped. "Metro_Manila",
// " metro  manila " and "METRO-MANILA" all fold to "metro manila".
func Key(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToLower(r))
		case unicode.IsSpace(r) || r == '-' || r == '_' || r == '.' || r == '/':
			space = true
		}
	}
	return b.String()
}

// Gazetteer answers "which canonical city, carrier or network type is this?".
// It is immutable once built and safe for concurrent use.
type Gazetteer struct {
	cities       map[string]*City
	carriers     map[string]string
	networkTypes map[string]string
	cityList     []City
}

// New builds a gazetteer. Two names (canonical or alias) that fold to the same
// key but mean different things are an error, named in the message.
func New(cities []City, carriers, networkTypes []Term) (*Gazetteer, error) {
	g := &Gazetteer{
		cities:       make(map[string]*City),
		carriers:     make(map[string]string),
		networkTypes: make(map[string]string),
	}
	for i := range cities {
		c := cities[i]
		if strings.TrimSpace(c.Name) == "" {
			return nil, fmt.Errorf("city #%d: name is empty", i+1)
		}
		if c.Region == "" {
			return nil, fmt.Errorf("city %q: region is empty", c.Name)
		}
		if _, ok := IslandGroupOrder[c.IslandGroup]; !ok {
			return nil, fmt.Errorf("city %q: island_group %q is not one of Luzon, Visayas, Mindanao", c.Name, c.IslandGroup)
		}
		if c.Latitude < 4 || c.Latitude > 22 || c.Longitude < 116 || c.Longitude > 127 {
			return nil, fmt.Errorf("city %q: coordinates (%g, %g) are outside the Philippines", c.Name, c.Latitude, c.Longitude)
		}
		cp := c
		for _, name := range append([]string{c.Name}, c.Aliases...) {
			k := Key(name)
			if k == "" {
				return nil, fmt.Errorf("city %q: alias %q has no letters or digits", c.Name, name)
			}
			if prev, ok := g.cities[k]; ok && prev.Name != c.Name {
				return nil, fmt.Errorf("city %q: name %q is already used by city %q", c.Name, name, prev.Name)
			}
			g.cities[k] = &cp
		}
		g.cityList = append(g.cityList, cp)
	}
	if err := addTerms(g.carriers, "carrier", carriers); err != nil {
		return nil, err
	}
	if err := addTerms(g.networkTypes, "network type", networkTypes); err != nil {
		return nil, err
	}
	sort.SliceStable(g.cityList, func(i, j int) bool { return lessCity(g.cityList[i], g.cityList[j]) })
	return g, nil
}

func addTerms(dst map[string]string, kind string, terms []Term) error {
	for i, t := range terms {
		if strings.TrimSpace(t.Name) == "" {
			return fmt.Errorf("%s #%d: name is empty", kind, i+1)
		}
		for _, name := range append([]string{t.Name}, t.Aliases...) {
			k := Key(name)
			if k == "" {
				return fmt.Errorf("%s %q: alias %q has no letters or digits", kind, t.Name, name)
			}
			if prev, ok := dst[k]; ok && prev != t.Name {
				return fmt.Errorf("%s %q: name %q is already used by %s %q", kind, t.Name, name, kind, prev)
			}
			dst[k] = t.Name
		}
	}
	return nil
}

// lessCity orders cities north to south by island group, then by latitude
// (north first), which is how a NOC reads a Philippine map.
func lessCity(a, b City) bool {
	ga, gb := IslandGroupOrder[a.IslandGroup], IslandGroupOrder[b.IslandGroup]
	if ga != gb {
		return ga < gb
	}
	if a.Latitude != b.Latitude {
		return a.Latitude > b.Latitude
	}
	return a.Name < b.Name
}

// Default returns the shipped gazetteer.
func Default() *Gazetteer {
	g, err := New(DefaultCities, DefaultCarriers, DefaultNetworkTypes)
	if err != nil {
		panic("gazetteer: shipped defaults are inconsistent: " + err.Error())
	}
	return g
}

// Extend returns the shipped gazetteer with an operator's additions. An entry
// whose name folds to the same key as a shipped one replaces it (to correct
// a shipped city or give it more aliases); the others are added. The
// collector's citytag processor and the probe's config both extend the
// defaults this way, so one block of cities works in either.
func Extend(cities []City, carriers, networkTypes []Term) (*Gazetteer, error) {
	return New(
		merge(DefaultCities, cities, func(c City) string { return c.Name }),
		merge(DefaultCarriers, carriers, func(t Term) string { return t.Name }),
		merge(DefaultNetworkTypes, networkTypes, func(t Term) string { return t.Name }),
	)
}

// merge returns base with each override replacing the base entry of the same
// folded name, followed by the overrides.
func merge[T any](base, overrides []T, name func(T) string) []T {
	replaced := make(map[string]bool, len(overrides))
	for _, o := range overrides {
		replaced[Key(name(o))] = true
	}
	out := make([]T, 0, len(base)+len(overrides))
	for _, b := range base {
		if !replaced[Key(name(b))] {
			out = append(out, b)
		}
	}
	return append(out, overrides...)
}

// City returns the canonical city for a name or alias.
func (g *Gazetteer) City(name string) (City, bool) {
	c, ok := g.cities[Key(name)]
	if !ok {
		return City{}, false
	}
	return *c, true
}

// Carrier returns the canonical carrier name for a name or alias.
func (g *Gazetteer) Carrier(name string) (string, bool) {
	c, ok := g.carriers[Key(name)]
	return c, ok
}

// NetworkType returns the canonical network type for a name or alias.
func (g *Gazetteer) NetworkType(name string) (string, bool) {
	t, ok := g.networkTypes[Key(name)]
	return t, ok
}

// Cities lists every canonical city, north to south by island group.
func (g *Gazetteer) Cities() []City {
	return append([]City(nil), g.cityList...)
}
