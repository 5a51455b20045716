package citytagprocessor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/configtest"
	"github.com/bantay-noc/bantay/internal/otlperror"
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

// FuzzRegistry feeds arbitrary files as the probe registry (included as
// `probes: ${file:probes.yaml}`): a registry the collector's YAML decoder
// takes is either refused naming a field under probes, or every probe in it
// is placed in a canonical city and its data on each registered uplink is
// accepted.
func FuzzRegistry(f *testing.F) {
	f.Add([]byte("mnl-01:\n  city: Metro Manila\n  uplinks:\n    - {carrier: Globe, network_type: 5G NR}\n    - {carrier: PLDT Home, network_type: FTTH}\n"))
	f.Add([]byte("dvo-01: {city: Davao City, uplinks: [{carrier: DITO, network_type: LTE}]}\n"))
	f.Add([]byte("x-01: {city: Atlantis, uplinks: [{carrier: Globe, network_type: 4g}]}\n"))
	f.Add([]byte("\"bad id\": {city: Manila, uplinks: [{carrier: Globe, network_type: 4g}]}\n"))
	f.Add([]byte("x-01: {city: Manila}\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("x-01: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		cfg, err, decodeErr := configtest.FromFile[Config](NewFactory(), "probes", file)
		if decodeErr != nil {
			return
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "probes") {
				t.Fatalf("error does not name the field: %v", err)
			}
			return
		}
		gaz, reg, err := cfg.build()
		if err != nil {
			t.Fatal(err)
		}
		proc, err := NewFactory().CreateMetrics(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		for id, p := range reg {
			if c, ok := gaz.City(p.city.Name); !ok || c.Name != p.city.Name {
				t.Fatalf("probe %s placed in non-canonical city %q", id, p.city.Name)
			}
			for u := range p.uplinks {
				md := pmetric.NewMetrics()
				addResource(md, uplinkRes{id, "", u.carrier, u.networkType}, "Manila")
				if err := proc.ConsumeMetrics(context.Background(), md); err != nil {
					t.Fatalf("registered probe %s on %v refused: %v", id, u, err)
				}
			}
		}
	})
}

// FuzzOTLPRequest feeds arbitrary OTLP/protobuf export requests, as the
// receiver decodes them, through citytag: it never panics; every point is
// either passed on (canonically tagged, from a registered probe, within the
// timestamp bounds, with valid UTF-8 attributes) or counted in the
// refusal, which is a permanent InvalidArgument the receiver can encode.
func FuzzOTLPRequest(f *testing.F) {
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	seed := func(md pmetric.Metrics) {
		for _, dp := range pointsOf(md) {
			dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		}
		b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	seed(mixedRequest())
	clean := pmetric.NewMetrics()
	addProbeResource(clean, mnlGlobe, 2)
	seed(clean)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	cfg := testConfig()
	h := startHarness(f, cfg, func(c *cityTagger) { c.now = func() time.Time { return at } })
	gaz, _, err := cfg.build()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := pmetricotlp.NewExportRequest()
		if req.UnmarshalProto(body) != nil {
			return // the receiver answers 400 before the pipeline
		}
		h.sink.Reset()
		in := req.Metrics().DataPointCount()
		err := h.proc.ConsumeMetrics(context.Background(), req.Metrics())
		passed, rejected := h.sink.DataPointCount(), 0
		if err != nil {
			msg := refusal(t, err)
			if !utf8.ValidString(msg) || len(msg) > otlperror.MaxMessage {
				t.Fatalf("refusal cannot be encoded: %q", msg)
			}
			var total int
			if _, e := fmt.Sscanf(msg, "citytag rejected %d of %d points", &rejected, &total); e != nil || total != in {
				t.Fatalf("refusal %q for %d points", msg, in)
			}
		}
		if passed+rejected != in {
			t.Fatalf("%d points in, %d passed, %d rejected", in, passed, rejected)
		}
		for _, md := range h.sink.AllMetrics() {
			for _, dp := range pointsOf(md) {
				a := dp.Attributes()
				if c, ok := gaz.City(strAttr(a, "dst_city")); !ok || c.Name != strAttr(a, "dst_city") {
					t.Fatalf("non-canonical dst_city %q passed", strAttr(a, "dst_city"))
				}
				if _, ok := cfg.Probes[strAttr(a, "probe")]; !ok {
					t.Fatalf("unregistered probe %q passed", strAttr(a, "probe"))
				}
				if ts := dp.Timestamp().AsTime(); ts.After(at.Add(cfg.Timestamps.MaxAhead)) || ts.Before(at.Add(-cfg.Timestamps.MaxAge)) {
					t.Fatalf("point at %v passed", ts)
				}
				for k, v := range a.All() {
					if !utf8.ValidString(k) || !utf8.ValidString(v.AsString()) {
						t.Fatalf("invalid UTF-8 attribute %q=%q passed", k, v.AsString())
					}
				}
			}
		}
	})
}

// point is what every kind of data point has.
type point interface {
	Attributes() pcommon.Map
	Timestamp() pcommon.Timestamp
	SetTimestamp(pcommon.Timestamp)
}

// pointsOf lists every data point of md, of every metric type.
func pointsOf(md pmetric.Metrics) []point {
	var out []point
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					for _, dp := range m.Gauge().DataPoints().All() {
						out = append(out, dp)
					}
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						out = append(out, dp)
					}
				case pmetric.MetricTypeHistogram:
					for _, dp := range m.Histogram().DataPoints().All() {
						out = append(out, dp)
					}
				case pmetric.MetricTypeExponentialHistogram:
					for _, dp := range m.ExponentialHistogram().DataPoints().All() {
						out = append(out, dp)
					}
				case pmetric.MetricTypeSummary:
					for _, dp := range m.Summary().DataPoints().All() {
						out = append(out, dp)
					}
				}
			}
		}
	}
	return out
}
