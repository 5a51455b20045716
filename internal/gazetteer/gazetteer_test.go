package gazetteer

import (
	"strings"
	"testing"
)

func TestAliasesResolveToCanonicalCities(t *testing.T) {
	g := Default()
	for alias, want := range map[string]struct{ name, region, island string }{
		"Metro Manila":   {"Manila", "NCR", Luzon},
		"NCR":            {"Manila", "NCR", Luzon},
		"City of Manila": {"Manila", "NCR", Luzon},
		"  metro_MANILA": {"Manila", "NCR", Luzon},
		"Davao City":     {"Davao", "Davao Region", Mindanao},
		"davao":          {"Davao", "Davao Region", Mindanao},
		"BAGUIO":         {"Baguio", "CAR", Luzon},
		"Baguio City":    {"Baguio", "CAR", Luzon},
		"cebu city":      {"Cebu", "Central Visayas", Visayas},
	} {
		c, ok := g.City(alias)
		if !ok {
			t.Errorf("%q: not found", alias)
			continue
		}
		if c.Name != want.name || c.Region != want.region || c.IslandGroup != want.island {
			t.Errorf("%q: got %s/%s/%s, want %s/%s/%s", alias, c.Name, c.Region, c.IslandGroup, want.name, want.region, want.island)
		}
	}
	for _, unknown := range []string{"", "Atlantis", "Manilaa", "Davao del Norte"} {
		if c, ok := g.City(unknown); ok {
			t.Errorf("%q resolved to %q; unknown places must not be guessed", unknown, c.Name)
		}
	}
}

func TestCarriersAndNetworkTypes(t *testing.T) {
	g := Default()
	for in, want := range map[string]string{"globe": "Globe", "GLOBE TELECOM": "Globe", "dito": "DITO", "PLDT Home": "PLDT", "converge ict": "Converge", "smart": "Smart"} {
		if got, ok := g.Carrier(in); !ok || got != want {
			t.Errorf("carrier %q: got %q %v, want %q", in, got, ok, want)
		}
	}
	for in, want := range map[string]string{"LTE": "4g", "4G": "4g", "5G NR": "5g", "nr": "5g", "FTTH": "fiber", "fibre": "fiber", "Wi-Fi": "wifi", "wifi": "wifi"} {
		if got, ok := g.NetworkType(in); !ok || got != want {
			t.Errorf("network type %q: got %q %v, want %q", in, got, ok, want)
		}
	}
	if _, ok := g.Carrier("Verizon"); ok {
		t.Error("unknown carrier resolved")
	}
}

func TestCitiesOrderedNorthToSouthByIslandGroup(t *testing.T) {
	cs := Default().Cities()
	last := -1
	for _, c := range cs {
		rank := IslandGroupOrder[c.IslandGroup]
		if rank < last {
			t.Fatalf("%s (%s) listed after a more southern island group", c.Name, c.IslandGroup)
		}
		last = rank
	}
	if cs[0].IslandGroup != Luzon || cs[len(cs)-1].IslandGroup != Mindanao {
		t.Fatalf("want Luzon first and Mindanao last, got %s … %s", cs[0].Name, cs[len(cs)-1].Name)
	}
}

func TestNewRejectsInconsistentInput(t *testing.T) {
	base := City{Name: "X", Region: "R", IslandGroup: Luzon, Latitude: 14, Longitude: 121}
	for name, tc := range map[string]struct {
		cities []City
		want   string
	}{
		"island":    {[]City{{Name: "X", Region: "R", IslandGroup: "Borneo", Latitude: 14, Longitude: 121}}, "island_group"},
		"coords":    {[]City{{Name: "X", Region: "R", IslandGroup: Luzon, Latitude: 40, Longitude: 121}}, "outside the Philippines"},
		"collision": {[]City{base, {Name: "Y", Region: "R", IslandGroup: Luzon, Latitude: 14, Longitude: 121, Aliases: []string{"x"}}}, `already used by city "X"`},
		"empty":     {[]City{{Region: "R", IslandGroup: Luzon}}, "name is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cities, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzKey checks the normaliser: folding is idempotent, never panics, and
// never produces leading, trailing or doubled spaces or upper case.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"Metro Manila", " DAVAO  City ", "Cagayan-de_Oro", "\xff\xfe", "ÑCR"} {
		f.Add(s)
	}
	g := Default()
	f.Fuzz(func(t *testing.T, s string) {
		k := Key(s)
		if Key(k) != k {
			t.Fatalf("Key not idempotent: %q -> %q -> %q", s, k, Key(k))
		}
		if strings.HasPrefix(k, " ") || strings.HasSuffix(k, " ") || strings.Contains(k, "  ") {
			t.Fatalf("Key(%q) = %q has stray spaces", s, k)
		}
		if c, ok := g.City(s); ok {
			if again, _ := g.City(c.Name); again.Name != c.Name {
				t.Fatalf("canonical name %q does not resolve to itself", c.Name)
			}
		}
	})
}

func TestExtendAddsAndReplaces(t *testing.T) {
	g, err := Extend(
		[]City{
			{Name: "Puerto Princesa", Region: "MIMAROPA", IslandGroup: Luzon, Latitude: 9.74, Longitude: 118.74, Aliases: []string{"PPS"}},
			// Replaces the shipped Davao (folded name match), with one more alias.
			{Name: "davao", Region: "Davao Region", IslandGroup: Mindanao, Latitude: 7.19, Longitude: 125.46, Aliases: []string{"Davao City", "Dabaw", "DVO", "Mindanao Hub"}},
		},
		[]Term{{Name: "Sky", Aliases: []string{"SkyCable"}}},
		[]Term{{Name: "satellite", Aliases: []string{"VSAT"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := g.City("pps"); !ok || c.Name != "Puerto Princesa" || c.Region != "MIMAROPA" {
		t.Errorf("added city: %+v %v", c, ok)
	}
	if c, ok := g.City("Mindanao Hub"); !ok || c.Name != "davao" {
		t.Errorf("replaced city: %+v %v", c, ok)
	}
	if _, ok := g.City("City of Davao"); ok {
		t.Error("an alias of the replaced shipped entry is still there")
	}
	if c, ok := g.City("BAGUIO"); !ok || c.Name != "Baguio" {
		t.Error("shipped cities must remain")
	}
	if n, ok := g.Carrier("skycable"); !ok || n != "Sky" {
		t.Errorf("added carrier: %q %v", n, ok)
	}
	if n, ok := g.Carrier("globe"); !ok || n != "Globe" {
		t.Errorf("shipped carrier: %q %v", n, ok)
	}
	if n, ok := g.NetworkType("vsat"); !ok || n != "satellite" {
		t.Errorf("added network type: %q %v", n, ok)
	}
	// An addition may not take a name that already means something else.
	if _, err := Extend([]City{{Name: "Tagum", Region: "Davao Region", IslandGroup: Mindanao, Latitude: 7.45, Longitude: 125.8, Aliases: []string{"Davao City"}}}, nil, nil); err == nil || !strings.Contains(err.Error(), `already used by city "Davao"`) {
		t.Errorf("ambiguous alias: %v", err)
	}
}
