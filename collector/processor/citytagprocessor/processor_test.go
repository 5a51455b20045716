package citytagprocessor

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension"
	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/logthrottle"
)

func cityFixture(name string, aliases ...string) gazetteer.City {
	return gazetteer.City{Name: name, Region: "Davao Region", IslandGroup: gazetteer.Mindanao,
		Latitude: 7.45, Longitude: 125.8, Aliases: aliases}
}

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Probes = map[string]ProbeEntry{
		"mnl-01": {City: "Manila", Uplinks: []Uplink{{Carrier: "Globe", NetworkType: "5g"}, {Carrier: "PLDT", NetworkType: "fiber"}}},
		"dvo-01": {City: "Davao", Uplinks: []Uplink{{Carrier: "DITO", NetworkType: "4g"}, {Carrier: "Smart", NetworkType: "5g"}}},
		"bag-01": {City: "Baguio", Uplinks: []Uplink{{Carrier: "Converge", NetworkType: "fiber"}}},
	}
	return cfg
}

type harness struct {
	sink *consumertest.MetricsSink
	tel  *componenttest.Telemetry
	proc interface {
		ConsumeMetrics(context.Context, pmetric.Metrics) error
	}
	tagger *cityTagger
}

func newHarness(t testing.TB, cfg *Config) *harness { return startHarness(t, cfg, nil) }

// startHarness builds citytag as the factory does, lets prepare adjust the
// tagger (nil: nothing), and starts it.
func startHarness(t testing.TB, cfg *Config, prepare func(*cityTagger)) *harness {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.MetricsSink)
	p, tagger, err := newProcessor(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	if prepare != nil {
		prepare(tagger)
	}
	// The bantay extension's stand-in owns the bus prepare gave the tagger (none by default).
	require.NoError(t, p.Start(context.Background(), hosttest.WithBus(tagger.bus)))
	t.Cleanup(func() { require.NoError(t, p.Shutdown(context.Background())) })
	return &harness{sink: sink, tel: tel, proc: p, tagger: tagger}
}

// rejected returns the rejected-points counter by reason.
func (h *harness) rejected(t *testing.T) map[string]int64 {
	t.Helper()
	return h.counterBy(t, "bantay_citytag_rejected_points", "reason")
}

// counterBy returns an int64 counter's values by one attribute.
func (h *harness) counterBy(t *testing.T, name, attr string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return out
	}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		r, _ := dp.Attributes.Value(attribute.Key(attr))
		out[r.AsString()] = dp.Value
	}
	return out
}

type uplinkRes struct{ probe, city, carrier, network string }

// addResource appends one probe uplink's resource with a latency histogram
// per destination.
func addResource(md pmetric.Metrics, u uplinkRes, dsts ...string) pmetric.Metric {
	rm := md.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.PutStr("service.name", "bantay-probe")
	if u.probe != "" {
		attrs.PutStr("service.instance.id", u.probe)
	}
	attrs.PutStr("bantay.probe.city", u.city)
	attrs.PutStr("bantay.uplink.carrier", u.carrier)
	attrs.PutStr("bantay.uplink.network_type", u.network)
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("network.latency")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, d := range dsts {
		dp := h.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("dst_city", d)
		dp.Attributes().PutStr("target", "reflector-"+d)
		dp.ExplicitBounds().FromRaw([]float64{10, 20, 50})
		dp.BucketCounts().FromRaw([]uint64{1, 2, 1, 0})
		dp.SetCount(4)
		dp.SetSum(70)
		dp.SetMin(5)
		dp.SetMax(30)
		dp.SetTimestamp(nowTS())
	}
	return m
}

// nowTS is a point time the timestamp bounds accept.
func nowTS() pcommon.Timestamp { return pcommon.NewTimestampFromTime(time.Now()) }

func pointAttrs(t *testing.T, md pmetric.Metrics) []map[string]any {
	t.Helper()
	var out []map[string]any
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeHistogram:
					for p := range m.Histogram().DataPoints().Len() {
						out = append(out, m.Histogram().DataPoints().At(p).Attributes().AsRaw())
					}
				case pmetric.MetricTypeSum:
					for p := range m.Sum().DataPoints().Len() {
						out = append(out, m.Sum().DataPoints().At(p).Attributes().AsRaw())
					}
				}
			}
		}
	}
	return out
}

func TestTagsCanonicalLabelsFromAliases(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"dvo-01", "DAVAO CITY", "dito telecommunity", "LTE"}, "Metro Manila", "baguio", "City of Manila")
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))

	got := h.sink.AllMetrics()
	require.Len(t, got, 1)
	pts := pointAttrs(t, got[0])
	require.Len(t, pts, 3)
	want := map[string]any{
		"src_city": "Davao", "region": "Davao Region", "island_group": "Mindanao",
		"dst_city": "Manila", "dst_region": "NCR", "dst_island_group": "Luzon",
		"carrier": "DITO", "network_type": "4g", "probe": "dvo-01", "target": "reflector-Metro Manila",
	}
	assert.Equal(t, want, pts[0])
	assert.Equal(t, "Baguio", pts[1]["dst_city"])
	assert.Equal(t, "CAR", pts[1]["dst_region"])
	assert.Equal(t, "Luzon", pts[1]["dst_island_group"])
	assert.Equal(t, "Manila", pts[2]["dst_city"])

	res := got[0].ResourceMetrics().At(0).Resource().Attributes()
	for _, k := range []string{"bantay.probe.city", "bantay.uplink.carrier", "bantay.uplink.network_type"} {
		_, ok := res.Get(k)
		assert.False(t, ok, "declared attribute %s must not reach the store", k)
	}
	assert.Empty(t, h.rejected(t))
}

func TestRegistryIsTheAuthorityForCity(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	// The probe claims Luzon; the registry puts dvo-01 in Davao, Mindanao.
	addResource(md, uplinkRes{"dvo-01", "Manila", "Smart", "5g"}, "Manila")
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))
	pts := pointAttrs(t, h.sink.AllMetrics()[0])
	require.Len(t, pts, 1)
	assert.Equal(t, "Davao", pts[0]["src_city"])
	assert.Equal(t, "Mindanao", pts[0]["island_group"])
	m, err := h.tel.GetMetric("bantay_citytag_declared_city_mismatches")
	require.NoError(t, err)
	dp := m.Data.(metricdata.Sum[int64]).DataPoints[0]
	assert.Equal(t, int64(1), dp.Value)
	probe, _ := dp.Attributes.Value("probe")
	assert.Equal(t, "dvo-01", probe.AsString())
}

// TestDeclaredCityMismatchIsAWarningEvent: the NOC sees a probe that
// declares another city than the registry's as a probe_warning event (rate
// limited like rejections), not only as a counter; the data is stored.
func TestDeclaredCityMismatchIsAWarningEvent(t *testing.T) {
	p, sub := startWithBus(t)
	for range 2 {
		md := pmetric.NewMetrics()
		addResource(md, uplinkRes{"dvo-01", "Baguio", "Smart", "5g"}, "Manila")
		require.NoError(t, p.ConsumeMetrics(context.Background(), md))
	}
	require.Len(t, sub, 1, "once per log_interval")
	e := <-sub
	assert.Equal(t, events.KindProbeWarning, e.Kind)
	assert.Equal(t, "declared_city_mismatch", e.Reason)
	assert.Equal(t, "dvo-01", e.Probe)
	assert.Equal(t, "Davao", e.SrcCity)
	assert.Equal(t, "Smart", e.Carrier)
	assert.Equal(t, `data from dvo-01 stored with a warning (declared_city_mismatch): probe declares city "Baguio"; tagged with the registry's "Davao"`, e.Body)
}

func TestRejectsWhatItCannotPlaceAndKeepsTheRest(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao", "Atlantis", "")
	addResource(md, uplinkRes{"ghost-9", "Manila", "Globe", "5g"}, "Davao", "Baguio")
	addResource(md, uplinkRes{"mnl-01", "Manila", "Verizon", "5g"}, "Davao")
	addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "carrier pigeon"}, "Davao")
	addResource(md, uplinkRes{"mnl-01", "Manila", "Smart", "5g"}, "Davao")
	addResource(md, uplinkRes{"", "Manila", "Globe", "5g"}, "Davao")
	addResource(md, uplinkRes{"bag-01", "Baguio", "Converge", "fiber"}, "Davao")
	assert.Equal(t, `citytag rejected 8 of 10 points; first: unknown_dst_city (probe mnl-01, target "reflector-Atlantis"): `+
		`dst_city "Atlantis" is not in the gazetteer; 7 reasons in all: missing_probe_id 1, unknown_probe 2, unknown_carrier 1, `+
		`unknown_network_type 1, unregistered_uplink 1, missing_dst_city 1, unknown_dst_city 1`,
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md)))

	pts := pointAttrs(t, h.sink.AllMetrics()[0])
	require.Len(t, pts, 2, "only the placeable points go on")
	assert.Equal(t, "Manila", pts[0]["src_city"])
	assert.Equal(t, "Baguio", pts[1]["src_city"])
	assert.Equal(t, map[string]int64{
		reasonUnknownDstCity:   1,
		reasonMissingDstCity:   1,
		reasonUnknownProbe:     2,
		reasonUnknownCarrier:   1,
		reasonUnknownNetwork:   1,
		reasonUnregisteredLink: 1,
		reasonMissingProbeID:   1,
	}, h.rejected(t))
}

func TestRejectsImpossibleValues(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	m := addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao", "Davao", "Davao", "Davao", "Davao", "Davao", "Davao")
	dps := m.Histogram().DataPoints()
	dps.At(1).SetSum(math.NaN())
	dps.At(2).SetSum(-5)
	dps.At(3).SetMax(1e9)                                  // absurd latency
	dps.At(4).BucketCounts().FromRaw([]uint64{9, 9, 9, 9}) // buckets do not add up to count
	dps.At(5).ExplicitBounds().FromRaw([]float64{50, 20, 10})
	// A stale marker carries no value and must pass untouched.
	dps.At(6).SetSum(math.NaN())
	dps.At(6).SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))

	sum := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	sum.SetName("bantay.probe.attempts")
	s := sum.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	good := s.DataPoints().AppendEmpty()
	good.Attributes().PutStr("dst_city", "Davao")
	good.SetIntValue(12)
	good.SetTimestamp(nowTS())
	bad := s.DataPoints().AppendEmpty()
	bad.Attributes().PutStr("dst_city", "Davao")
	bad.SetIntValue(-3)
	bad.SetTimestamp(nowTS())

	assert.Equal(t, `citytag rejected 6 of 9 points; first: invalid_value (probe mnl-01, target "reflector-Davao"): metric "network.latency" has an impossible value`,
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md)))
	pts := pointAttrs(t, h.sink.AllMetrics()[0])
	assert.Len(t, pts, 3, "the good histogram, the stale marker and the good counter")
	assert.Equal(t, map[string]int64{reasonInvalidValue: 6}, h.rejected(t))
}

func TestAllRejectedSendsNothingDownstream(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"nobody", "Manila", "Globe", "5g"}, "Davao", "Baguio")
	assert.Equal(t, "citytag rejected 2 of 2 points; first: unknown_probe (probe nobody): probe is not in the citytag registry",
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md)))
	assert.Empty(t, h.sink.AllMetrics())
	assert.Equal(t, map[string]int64{reasonUnknownProbe: 2}, h.rejected(t))
}

type authData map[string]any

func (a authData) GetAttribute(k string) any { return a[k] }
func (a authData) GetAttributeNames() []string {
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	return names
}

func TestCredentialMustMatchTheProbe(t *testing.T) {
	cfg := testConfig()
	cfg.RequireAuthenticatedProbe = true
	h := newHarness(t, cfg)
	asProbe := func(id string) context.Context {
		return client.NewContext(context.Background(), client.Info{Auth: authData{probeauthextension.ProbeIDAttribute: id}})
	}
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao")
	addResource(md, uplinkRes{"dvo-01", "Davao", "DITO", "4g"}, "Manila") // impersonation
	assert.Equal(t, `citytag rejected 1 of 2 points; first: probe_identity_mismatch (probe dvo-01): credential belongs to probe "mnl-01", data claims "dvo-01"`,
		refusal(t, h.proc.ConsumeMetrics(asProbe("mnl-01"), md)))
	pts := pointAttrs(t, h.sink.AllMetrics()[0])
	require.Len(t, pts, 1)
	assert.Equal(t, "mnl-01", pts[0]["probe"])

	md = pmetric.NewMetrics()
	addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao")
	assert.Equal(t, "citytag rejected 1 of 1 points; first: unauthenticated (probe mnl-01): no probe credential (require_authenticated_probe is set)",
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md)))
	assert.Equal(t, map[string]int64{reasonIdentityMismatch: 1, reasonUnauthenticated: 1}, h.rejected(t))
}

// startWithBus starts a citytag with testConfig() in a host with an event
// bus, and subscribes to the bus.
func startWithBus(t *testing.T) (processor.Metrics, <-chan events.Event) {
	t.Helper()
	bus, err := events.NewBus(16, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	sub, cancel := bus.Subscribe()
	t.Cleanup(cancel)
	p, err := NewFactory().CreateMetrics(context.Background(), processortest.NewNopSettings(metadata.Type), testConfig(), new(consumertest.MetricsSink))
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), hosttest.WithBus(bus)))
	t.Cleanup(func() { require.NoError(t, p.Shutdown(context.Background())) })
	return p, sub
}

func TestRejectionsArePublishedAsEventsAsOftenAsLogged(t *testing.T) {
	p, sub := startWithBus(t)
	for range 3 { // three rejections within log_interval: one event
		md := pmetric.NewMetrics()
		addResource(md, uplinkRes{"dvo-01", "Davao", "DITO", "4g"}, "Atlantis")
		assert.Contains(t, refusal(t, p.ConsumeMetrics(context.Background(), md)), "unknown_dst_city", "every request is told, not only the logged one")
	}
	e := <-sub
	assert.Equal(t, events.KindProbeRejected, e.Kind)
	assert.Equal(t, "dvo-01", e.Probe)
	assert.Equal(t, reasonUnknownDstCity, e.Reason)
	assert.Equal(t, "Davao", e.SrcCity)
	assert.Equal(t, "Mindanao", e.IslandGroup)
	assert.Equal(t, "DITO", e.Carrier)
	assert.Equal(t, "4g", e.NetworkType)
	select {
	case extra := <-sub:
		t.Fatalf("rejections within log_interval must not publish again: %+v", extra)
	default:
	}
}

// TestRejectionEventsNameTheUplink: a rejection event carries the canonical
// carrier and network type of the uplink the data came on whenever the
// gazetteer knows them, whatever the reason, so that a dashboard or the
// web feed filtered by carrier still shows it; and each uplink of a probe
// gets its own event within log_interval.
func TestRejectionEventsNameTheUplink(t *testing.T) {
	p, sub := startWithBus(t)
	type want struct{ probe, reason, city, carrier, network string }
	for _, tc := range []struct {
		res  uplinkRes
		dst  string
		want want
	}{
		// Registered uplinks, a point refused: the registry's city, the uplink
		// in canonical form (aliases resolved). Two uplinks of one probe: two events.
		{uplinkRes{"dvo-01", "Davao", "dito", "LTE"}, "Atlantis", want{"dvo-01", reasonUnknownDstCity, "Davao", "DITO", "4g"}},
		{uplinkRes{"dvo-01", "Davao", "Smart", "5g"}, "Atlantis", want{"dvo-01", reasonUnknownDstCity, "Davao", "Smart", "5g"}},
		// A whole resource refused.
		{uplinkRes{"dvo-01", "Davao", "Globe", "5g"}, "Manila", want{"dvo-01", reasonUnregisteredLink, "Davao", "Globe", "5g"}},
		{uplinkRes{"zzz-99", "Manila", "PLDT", "fiber"}, "Davao", want{"zzz-99", reasonUnknownProbe, "", "PLDT", "fiber"}},
		{uplinkRes{"", "Manila", "Globe", "5g"}, "Davao", want{"", reasonMissingProbeID, "", "Globe", "5g"}},
		// What the gazetteer does not know stays out (the carrier is a label).
		{uplinkRes{"mnl-01", "Manila", "Acme Telecom", "5g"}, "Davao", want{"mnl-01", reasonUnknownCarrier, "Manila", "", "5g"}},
	} {
		md := pmetric.NewMetrics()
		addResource(md, tc.res, tc.dst)
		assert.Contains(t, refusal(t, p.ConsumeMetrics(context.Background(), md)), tc.want.reason)
		select {
		case e := <-sub:
			assert.Equal(t, tc.want, want{e.Probe, e.Reason, e.SrcCity, e.Carrier, e.NetworkType}, "%+v", tc.res)
		default:
			t.Errorf("%+v: no event", tc.res)
		}
	}
	select {
	case extra := <-sub:
		t.Errorf("unexpected event %+v", extra)
	default:
	}
}

// TestRejectsImpossibleLatenciesOfAnyShape: a latency that arrives as an
// exponential histogram or as a gauge is held to the same rules as the
// explicit-bucket histogram probes send, and the good points around a bad
// one are kept.
func TestRejectsImpossibleLatenciesOfAnyShape(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	hist := addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao", "Davao")
	hist.Histogram().DataPoints().At(1).SetCount(0) // buckets say 4, count 0
	hist.Histogram().DataPoints().At(1).BucketCounts().FromRaw([]uint64{0, 0, 0, 0})
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()

	exp := ms.AppendEmpty()
	exp.SetName("network.latency")
	exp.SetUnit("ms")
	eh := exp.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	newExp := func() pmetric.ExponentialHistogramDataPoint {
		dp := eh.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("dst_city", "Baguio")
		dp.SetTimestamp(nowTS())
		dp.SetScale(3)
		dp.Positive().SetOffset(20)
		dp.Positive().BucketCounts().FromRaw([]uint64{1, 2, 1})
		dp.SetCount(4)
		dp.SetSum(48)
		dp.SetMin(11)
		dp.SetMax(13)
		return dp
	}
	newExp() // good
	newExp().SetMax(1e9)
	newExp().SetSum(math.Inf(1))
	neg := newExp()
	neg.Negative().BucketCounts().FromRaw([]uint64{1})
	neg.SetCount(5)
	newExp().SetCount(7) // buckets add up to 4
	mean := newExp()
	mean.SetSum(4e6) // mean of 1e6 ms, without min and max to give it away
	mean.RemoveMin()
	mean.RemoveMax()

	g := ms.AppendEmpty()
	g.SetName("network.latency")
	gauge := g.SetEmptyGauge()
	for _, v := range []float64{12.5, -1, math.NaN(), 1e12} {
		dp := gauge.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("dst_city", "Cebu")
		dp.SetTimestamp(nowTS())
		dp.SetDoubleValue(v)
	}

	assert.Equal(t, `citytag rejected 9 of 12 points; first: invalid_value (probe mnl-01, target "reflector-Davao"): metric "network.latency" has an impossible value`,
		refusal(t, h.proc.ConsumeMetrics(context.Background(), md)))
	got := h.sink.AllMetrics()
	require.Len(t, got, 1)
	out := got[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	require.Equal(t, 3, out.Len())
	assert.Equal(t, 1, out.At(0).Histogram().DataPoints().Len(), "the good explicit histogram")
	require.Equal(t, 1, out.At(1).ExponentialHistogram().DataPoints().Len(), "the good exponential histogram")
	assert.Equal(t, 13.0, out.At(1).ExponentialHistogram().DataPoints().At(0).Max())
	require.Equal(t, 1, out.At(2).Gauge().DataPoints().Len(), "the good gauge point")
	assert.Equal(t, 12.5, out.At(2).Gauge().DataPoints().At(0).DoubleValue())
	assert.Equal(t, map[string]int64{reasonInvalidValue: 1 + 5 + 3}, h.rejected(t))
}

// TestRejectionLogIsRateLimited: a probe rejected on every request is one
// log line per (reason, probe) per log_interval (on a fake clock), carrying the count of the
// rejections it stood for; another probe or reason gets its own line.
func TestRejectionLogIsRateLimited(t *testing.T) {
	cfg := testConfig()
	cfg.LogInterval = time.Second
	core, logs := observer.New(zap.InfoLevel)
	set := processortest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	tel := componenttest.NewTelemetry()
	defer tel.Shutdown(context.Background())
	set.TelemetrySettings.MeterProvider = tel.NewTelemetrySettings().MeterProvider
	p, tagger, err := newProcessor(context.Background(), set, cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	tagger.logs.SetClock(func() time.Time { return at })
	require.NoError(t, p.Start(context.Background(), hosttest.With(&hosttest.Provider{})))
	defer p.Shutdown(context.Background())

	send := func(probe, dst string) {
		md := pmetric.NewMetrics()
		addResource(md, uplinkRes{probe, "Manila", "Globe", "5g"}, dst)
		assert.NotEmpty(t, refusal(t, p.ConsumeMetrics(context.Background(), md)), "each request is refused, logged or not")
	}
	for range 5 {
		send("ghost-1", "Davao")
	}
	send("ghost-2", "Davao")      // another probe
	send("mnl-01", "Atlantis")    // another reason
	send("mnl-01", "Gotham City") // same reason and probe: suppressed
	lines := logs.FilterMessage("citytag rejected data").All()
	require.Len(t, lines, 3, "one line per (reason, probe) within log_interval")
	assert.Equal(t, "unknown_probe", lines[0].ContextMap()["reason"])
	assert.Equal(t, "ghost-1", lines[0].ContextMap()["probe"])
	assert.Equal(t, "ghost-2", lines[1].ContextMap()["probe"])
	assert.Equal(t, "unknown_dst_city", lines[2].ContextMap()["reason"])

	at = at.Add(cfg.LogInterval)
	send("ghost-1", "Davao")
	lines = logs.FilterMessage("citytag rejected data").FilterField(zap.String("probe", "ghost-1")).All()
	require.Len(t, lines, 2, "logged again once log_interval has passed")
	assert.Equal(t, int64(4), lines[1].ContextMap()[logthrottle.SuppressedField])

	m, err := tel.GetMetric("bantay_citytag_rejected_points")
	require.NoError(t, err)
	var total int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		total += dp.Value
	}
	assert.Equal(t, int64(9), total, "every rejection is counted, logged or not")
}

// TestNativeLatencyHeldToTheSameRules: network.latency.native (the probe's
// exponential histogram, issue 12) is latency too, so an absurd one is
// refused like network.latency's.
func TestNativeLatencyHeldToTheSameRules(t *testing.T) {
	h := newHarness(t, testConfig())
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao")
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	m := ms.AppendEmpty()
	m.SetName("network.latency.native")
	m.SetUnit("ms")
	dp := m.SetEmptyExponentialHistogram().DataPoints().AppendEmpty()
	dp.Attributes().PutStr("dst_city", "Baguio")
	dp.SetTimestamp(nowTS())
	dp.SetScale(3)
	dp.Positive().SetOffset(20)
	dp.Positive().BucketCounts().FromRaw([]uint64{4})
	dp.SetCount(4)
	dp.SetSum(48)
	dp.SetMax(1e9)
	assert.Contains(t, refusal(t, h.proc.ConsumeMetrics(context.Background(), md)), `metric "network.latency.native" has an impossible value`)
	assert.Equal(t, map[string]int64{reasonInvalidValue: 1}, h.rejected(t))
}
