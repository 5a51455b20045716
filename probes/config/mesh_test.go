package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/meshreg"
)

const meshOnly = `probe: {id: mnl-01, city: Manila}
collector: {endpoint: "collector.example.ph:4317", tls: {insecure: true}}
uplinks: [{name: globe-5g, carrier: Globe, network_type: 5g}]
`

func TestMeshTrueTakesTheDefaults(t *testing.T) {
	cfg, err := Parse("m.yaml", []byte(meshOnly+"mesh: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Mesh{Enabled: true, Collector: "http://collector.example.ph:8080", Refresh: time.Minute, Methods: []string{"udp", "icmp"}}
	if !reflect.DeepEqual(cfg.Mesh, want) {
		t.Errorf("mesh = %+v, want %+v", cfg.Mesh, want)
	}
	cfg, err = Parse("m.yaml", []byte(meshOnly+"mesh: {refresh: 10s, methods: [udp], collector: \"http://10.0.0.1:9090\"}\nreflector: {listen: \"0.0.0.0:7001\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want = Mesh{Enabled: true, Collector: "http://10.0.0.1:9090", Refresh: 10 * time.Second, Methods: []string{"udp"}}
	if !reflect.DeepEqual(cfg.Mesh, want) || cfg.Reflector.Listen != "0.0.0.0:7001" {
		t.Errorf("mesh = %+v, reflector %+v; want %+v", cfg.Mesh, cfg.Reflector, want)
	}
	secure := strings.Replace(meshOnly, "tls: {insecure: true}", "tls: {}", 1)
	cfg, err = Parse("m.yaml", []byte(strings.Replace(secure, "collector.example.ph:4317", "[2001:db8::5]:4317", 1)+"mesh: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mesh.Collector != "https://[2001:db8::5]:8080" {
		t.Errorf("default mesh.collector with TLS = %q", cfg.Mesh.Collector)
	}
}

func TestMeshProblemsNameTheField(t *testing.T) {
	for yaml, want := range map[string]string{
		"mesh: yes-please\n":                          `m.yaml:4: mesh: want true, false or a mapping`,
		"mesh: {refresh: 1m, methdos: [udp]}\n":       `m.yaml:4: mesh.methdos: is not a known field (known: collector, refresh, methods)`,
		"mesh: {methods: [udp, tcp]}\n":               `mesh.methods: [1]: "tcp" is not one of [udp icmp]`,
		"mesh: {methods: []}\n":                       `mesh.methods: is empty`,
		"mesh: {refresh: 10ms}\n":                     `mesh.refresh: 10ms is shorter than 1s`,
		"mesh: {collector: \"collector:8080\"}\n":     `mesh.collector: "collector:8080" is not an http:// or https:// URL`,
		"reflector: {listen: \"7001\"}\nmesh: true\n": `reflector.listen: "7001" is not host:port`,
		"mesh: false\n":                               `targets: at least one target is required (or mesh mode`,
	} {
		_, err := Parse("m.yaml", []byte(meshOnly+yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", yaml, err, want)
		}
	}
	_, err := Parse("m.yaml", []byte(strings.Replace(meshOnly, "tls: {insecure: true}", "tls: {}", 1)+"mesh: {collector: \"http://c:8080\"}\n"))
	if err == nil || !strings.Contains(err.Error(), "mesh.collector: \"http://c:8080\" is plain http but collector.tls.insecure is false") {
		t.Errorf("plain-http registry with TLS OTLP: %v", err)
	}
}

// TestMeshTargets: every other site's reflector addresses, by method as
// far as both the site and the probe take it, named by site (and uplink),
// merged with the file's targets: a file target measuring the same thing
// wins, and a site the probe cannot place is left out with its reason.
func TestMeshTargets(t *testing.T) {
	cfg, err := Parse("m.yaml", []byte(meshOnly+`mesh: true
defaults: {interval: 10s, timeout: 2s}
targets:
  - {name: davao-by-hand, dst_city: Davao, method: udp, address: "192.0.2.3:7001"}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, errs := cfg.MeshTargets(meshreg.Answer{Probe: "mnl-01", Sites: []meshreg.Site{
		{Probe: "bag-01", City: "Baguio", Methods: []string{"udp", "icmp"}, Reflectors: []meshreg.Reflector{{Address: "bag.example.ph:7001"}}},
		{Probe: "dvo-01", City: "Davao", Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{
			{Address: "192.0.2.3:7001", Carrier: "DITO", NetworkType: "4g"},
			{Address: "[2001:db8::3]:7001", Carrier: "PLDT", NetworkType: "fiber"}}},
		{Probe: "mnl-01", City: "Manila", Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{{Address: "192.0.2.1:7001"}}},
		{Probe: "ggg-01", City: "Gotham", Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{{Address: "192.0.2.9:7001"}}},
		{Probe: "bad-01", City: "Cebu", Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{{Address: "192.0.2.10"}}},
	}})
	var names []string
	for _, tg := range got {
		names = append(names, tg.Name+" "+tg.DstCity+" "+tg.Method+" "+tg.Address+" "+tg.Interval.String())
	}
	want := []string{
		"mesh-bag-01-udp Baguio udp bag.example.ph:7001 10s",
		"mesh-bag-01-icmp Baguio icmp bag.example.ph 10s",
		"mesh-dvo-01-PLDT-fiber-udp Davao udp [2001:db8::3]:7001 10s",
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("mesh targets:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), `site ggg-01: dst_city: "Gotham" is not a city in the gazetteer`) ||
		!strings.Contains(errs[1].Error(), `site bad-01: reflector "192.0.2.10" is not host:port`) {
		t.Errorf("problems %v", errs)
	}
	if got[0].Count != 5 || got[1].Count != 5 {
		t.Errorf("mesh targets take the method's default round: %+v", got[:2])
	}
}
