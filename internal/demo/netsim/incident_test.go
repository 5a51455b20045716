package netsim

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseIncident(t *testing.T) {
	inc, err := ParseIncident("Davao City/globe: +80ms, 5% loss, +10ms jitter after 60s for 5m")
	if err != nil {
		t.Fatal(err)
	}
	want := Incident{Spec: inc.Spec, City: "Davao", Carrier: "Globe", Delay: 80 * time.Millisecond,
		Jitter: 10 * time.Millisecond, Loss: inc.Loss, After: time.Minute, For: 5 * time.Minute}
	if inc != want || math.Abs(inc.Loss-0.05) > 1e-9 {
		t.Errorf("got %+v, want %+v", inc, want)
	}
	// Globe is only Manila's uplink: Manila → Davao is the one path hit.
	if p := inc.Paths(); len(p) != 1 || p[0].Uplink.Probe != "mnl-01" || p[0].Dst != "Davao" {
		t.Errorf("paths %+v, want mnl-01 Globe → Davao", p)
	}
	// Without a carrier, every path into or out of the city: Davao's four
	// (two uplinks × Manila, Baguio) plus its own two to itself, and the
	// four other uplinks' paths to Davao.
	all, err := ParseIncident("Davao: 10% loss")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(all.Paths()); n != 10 || all.For != 0 || all.After != 0 {
		t.Errorf("%d paths, for %v, after %v; want 10, 0, 0", n, all.For, all.After)
	}
}

func TestParseIncidentNamesTheBadPart(t *testing.T) {
	for spec, want := range map[string]string{
		"Davao +80ms":                      "want CITY[/CARRIER]: EFFECTS",
		"Gotham/Globe: +80ms":              `city "Gotham" is not in the gazetteer`,
		"Davao/Acme: +80ms":                `carrier "Acme" is not in the gazetteer`,
		"Cebu/Globe: +80ms":                "no demo path on Globe starts or ends in Cebu",
		"Davao/Globe: +80xs":               `effect "+80xs"`,
		"Davao/Globe: 5%":                  `effect "5%": want "5% loss"`,
		"Davao/Globe: 100% loss":           `effect "100%"`,
		"Davao/Globe: slow":                `"slow" is not an effect`,
		"Davao/Globe: +80ms after soon":    `after "soon" is not a positive duration`,
		"Davao/Globe: +80ms for":           `"for" needs a duration`,
		"Davao/Globe: +80ms for 1m for 2m": `"for" given twice`,
		"Davao/Globe: after 1m":            "no effect",
	} {
		_, err := ParseIncident(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", spec, err, want)
		}
	}
}

// Apply degrades exactly the incident's paths and restore puts back what
// they had, including a profile changed before the incident.
func TestIncidentApplyAndRestore(t *testing.T) {
	tables := DemoProfiles()
	inc, err := ParseIncident("Davao/Globe: +80ms, 50% loss")
	if err != nil {
		t.Fatal(err)
	}
	globe := inc.Paths()[0].Uplink
	before := tables["Davao"].Lookup(globe.Addr)
	other := DemoUplinks()[1] // Manila PLDT, not hit
	otherBefore := tables["Davao"].Lookup(other.Addr)
	restore, err := inc.Apply(tables)
	if err != nil {
		t.Fatal(err)
	}
	got := tables["Davao"].Lookup(globe.Addr)
	if got.Base != before.Base+80*time.Millisecond || got.Loss < 0.5 || got.Jitter != before.Jitter {
		t.Errorf("degraded %v, from %v", got, before)
	}
	if p := tables["Davao"].Lookup(other.Addr); p != otherBefore {
		t.Errorf("Manila PLDT → Davao changed to %v", p)
	}
	if p := tables["Manila"].Lookup(globe.Addr); p.Base > 10*time.Millisecond {
		t.Errorf("Manila Globe → Manila changed to %v", p)
	}
	restore()
	restore() // once is enough; twice is harmless
	if p := tables["Davao"].Lookup(globe.Addr); p != before {
		t.Errorf("restored %v, want %v", p, before)
	}
}
