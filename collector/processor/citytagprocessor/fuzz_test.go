package citytagprocessor

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// FuzzPlacement feeds arbitrary probe, carrier, network and destination
// strings through the processor: it must never panic, every point it lets
// through must carry canonical labels from the gazetteer, and a point it
// does not let through is refused to the sender.
func FuzzPlacement(f *testing.F) {
	f.Add("dvo-01", "Davao City", "DITO", "LTE", "Metro Manila")
	f.Add("mnl-01", "", "globe", "5G NR", "baguio ")
	f.Add("", "\x00", "\xff", "", "")
	cfg := testConfig()
	h := newHarness(f, cfg)
	gaz, _, err := cfg.build()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, probe, city, carrier, network, dst string) {
		md := pmetric.NewMetrics()
		addResource(md, uplinkRes{probe, city, carrier, network}, dst)
		// Nothing is dropped silently: the point is passed on, or the
		// sender is told it was rejected.
		err := h.proc.ConsumeMetrics(context.Background(), md)
		if passed := h.sink.DataPointCount(); (err == nil) != (passed == 1) {
			t.Fatalf("%d points passed on, answer %v", passed, err)
		}
		if err != nil {
			if msg := refusal(t, err); !strings.HasPrefix(msg, "citytag rejected 1 of 1 points; first: ") {
				t.Fatalf("refusal %q", msg)
			}
		}
		for _, got := range h.sink.AllMetrics() {
			for _, p := range pointAttrs(t, got) {
				c, ok := gaz.City(p["dst_city"].(string))
				if !ok || c.Name != p["dst_city"] {
					t.Fatalf("non-canonical dst_city %q stored", p["dst_city"])
				}
				if _, ok := cfg.Probes[p["probe"].(string)]; !ok {
					t.Fatalf("unregistered probe %q stored", p["probe"])
				}
			}
		}
		h.sink.Reset()
	})
}
