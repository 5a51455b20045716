package citytagprocessor

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
)

// The probe and the collector once disagreed on what a probe id is (the
// probe `^[a-z0-9-]+$`, citytag `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`), so an
// id one side took the other refused. Both now check with the metric
// model; this test holds their real validations against each other.
var candidateIDs = []string{
	"mnl-01", "MNL_01", "dvo.02", "a", "0", "bag-01-globe", strings.Repeat("a", 63), strings.Repeat("a", 64),
	"-mnl", ".mnl", "_mnl", "mnl 01", "mnl/01", "mnl:01", "dávao", "", "mnl\x00", "mnl\xff", "mnl\n", "ñ",
}

var candidateNames = []string{
	"a", "globe-5g", "reflector.Davao_2", strings.Repeat("n", metricmodel.MaxNameLength),
	strings.Repeat("n", metricmodel.MaxNameLength+1), "with space", "slash/name", "", "emoji-🙂", "bad\xff",
}

const probeConfig = `probe:
  id: PROBEID
  city: Manila
collector:
  endpoint: 127.0.0.1:4317
  tls: {insecure: true}
uplinks:
  - name: UPLINK
    carrier: Globe
    network_type: 5g
    bind_address: 127.0.1.1
targets:
  - name: TARGET
    dst_city: Davao
    method: udp
    address: 127.0.0.1:7001
`

// probeAccepts says whether bantay-probe's own configuration check takes
// the probe config with id, uplink and target substituted.
func probeAccepts(id, uplink, target string) bool {
	quote := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\x00", `\0`).Replace(s) + `"`
	}
	doc := strings.NewReplacer("PROBEID", quote(id), "UPLINK", quote(uplink), "TARGET", quote(target)).Replace(probeConfig)
	_, err := config.Parse("probe.yaml", []byte(doc))
	return err == nil
}

func TestProbeAndRegistryAgreeOnProbeIDs(t *testing.T) {
	for _, id := range candidateIDs {
		cfg := createDefaultConfig().(*Config)
		cfg.Probes = map[string]ProbeEntry{id: {City: "Manila", Uplinks: []Uplink{{Carrier: "Globe", NetworkType: "5g"}}}}
		citytag := cfg.Validate() == nil
		probe := probeAccepts(id, "globe-5g", "a")
		if citytag != probe {
			t.Errorf("probe id %q: the probe accepts it: %v, citytag's registry accepts it: %v", id, probe, citytag)
		}
	}
}

// Every uplink and target name a probe accepts reaches the store: citytag
// (default limits) places a point from an uplink so named for a target so
// named. (citytag is more lenient the other way on purpose: a target
// attribute from another OTLP sender need only be valid UTF-8 within the
// value length limit.)
func TestNamesTheProbeAcceptsAreStored(t *testing.T) {
	accepted := 0
	for _, name := range candidateNames {
		if !probeAccepts("mnl-01", name, name) {
			continue
		}
		accepted++
		h := newHarness(t, testConfig())
		md := pmetric.NewMetrics()
		m := addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao")
		m.Histogram().DataPoints().At(0).Attributes().PutStr(metricmodel.AttrTarget, name)
		if err := h.proc.ConsumeMetrics(context.Background(), md); err != nil {
			t.Errorf("name %q: the probe accepts it, citytag refuses the point: %v", name, err)
		}
	}
	if accepted < 4 {
		t.Fatalf("only %d candidate names accepted by the probe; the probe config in this test is broken", accepted)
	}
}
