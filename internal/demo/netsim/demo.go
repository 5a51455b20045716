package netsim

import (
	"fmt"
	"net/netip"
	"time"
)

// DemoUplink is one probe uplink of the demo network. Its Addr is the
// loopback address the probe binds for this uplink, which is how the
// proxies in front of each city's servers know whose packet they carry.
type DemoUplink struct {
	Probe       string // probe id
	City        string // canonical gazetteer city of the probe
	Name        string // uplink name in the probe config
	Carrier     string // canonical carrier
	NetworkType string // canonical network type
	Addr        netip.Addr
}

// DemoCities are the demo's sites, north to south.
func DemoCities() []string { return []string{"Manila", "Baguio", "Davao"} }

// DemoUplinks are the demo's probes: one per city, two uplinks each.
func DemoUplinks() []DemoUplink {
	a := netip.MustParseAddr
	return []DemoUplink{
		{"mnl-01", "Manila", "globe-5g", "Globe", "5g", a("127.0.1.1")},
		{"mnl-01", "Manila", "pldt-fiber", "PLDT", "fiber", a("127.0.1.2")},
		{"bag-01", "Baguio", "smart-4g", "Smart", "4g", a("127.0.2.1")},
		{"bag-01", "Baguio", "converge-fiber", "Converge", "fiber", a("127.0.2.2")},
		{"dvo-01", "Davao", "dito-4g", "DITO", "4g", a("127.0.3.1")},
		{"dvo-01", "Davao", "pldt-fiber", "PLDT", "fiber", a("127.0.3.2")},
	}
}

// backboneRTT is the round trip between two cities over fiber backbone,
// before the access network: Manila–Baguio is ~250 km of terrestrial fibre,
// Manila–Davao ~1,000 km mostly submarine, and Baguio–Davao hauls through
// Manila.
var backboneRTT = map[[2]string]time.Duration{
	{"Manila", "Manila"}: 2 * time.Millisecond,
	{"Baguio", "Baguio"}: 2 * time.Millisecond,
	{"Davao", "Davao"}:   2 * time.Millisecond,
	{"Manila", "Baguio"}: 9 * time.Millisecond,
	{"Manila", "Davao"}:  29500 * time.Microsecond,
	{"Baguio", "Davao"}:  40 * time.Millisecond,
}

// access is what the last mile adds: fixed latency, queueing jitter and loss.
var access = map[string]Profile{
	"fiber": {Base: 500 * time.Microsecond, Jitter: 300 * time.Microsecond, Loss: 0},
	"wifi":  {Base: 2 * time.Millisecond, Jitter: 1500 * time.Microsecond, Loss: 0.002},
	"5g":    {Base: 3 * time.Millisecond, Jitter: 1500 * time.Microsecond, Loss: 0.001},
	"4g":    {Base: 6 * time.Millisecond, Jitter: 4 * time.Millisecond, Loss: 0.005},
}

// demoOverrides are paths that are worse than the model says, so that the
// demo's heatmap and alerts have something to find: DITO 4G from Davao to
// Manila (congested interconnect) next to PLDT fiber on the same route.
var demoOverrides = map[[3]string]Profile{
	{"DITO", "Davao", "Manila"}: {Base: 60 * time.Millisecond, Jitter: 8 * time.Millisecond, Loss: 0.03},
}

// DemoProfile is the impairment from a demo uplink to a server in dstCity.
func DemoProfile(u DemoUplink, dstCity string) (Profile, error) {
	if p, ok := demoOverrides[[3]string{u.Carrier, u.City, dstCity}]; ok {
		return p, nil
	}
	rtt, ok := backboneRTT[[2]string{u.City, dstCity}]
	if !ok {
		rtt, ok = backboneRTT[[2]string{dstCity, u.City}]
	}
	if !ok {
		return Profile{}, fmt.Errorf("netsim: no demo route from %s to %s", u.City, dstCity)
	}
	acc, ok := access[u.NetworkType]
	if !ok {
		return Profile{}, fmt.Errorf("netsim: no demo access profile for network type %q", u.NetworkType)
	}
	return Profile{Base: rtt + acc.Base, Jitter: acc.Jitter, Loss: acc.Loss}, nil
}

// DemoTable is the table for the proxy in front of dstCity's servers: each
// demo uplink's address gets its path's profile; any other source (a tool
// run by hand on 127.0.0.1) passes unimpaired.
func DemoTable(dstCity string) (*Table, error) {
	t := NewTable(Profile{})
	for _, u := range DemoUplinks() {
		p, err := DemoProfile(u, dstCity)
		if err != nil {
			return nil, err
		}
		if err := t.Set(u.Addr, p); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// DemoProfiles returns one table per demo city, keyed by the city whose
// servers the table's proxy fronts.
func DemoProfiles() map[string]*Table {
	out := make(map[string]*Table, len(DemoCities()))
	for _, c := range DemoCities() {
		t, err := DemoTable(c)
		if err != nil {
			panic("netsim: demo profiles are inconsistent: " + err.Error())
		}
		out[c] = t
	}
	return out
}
