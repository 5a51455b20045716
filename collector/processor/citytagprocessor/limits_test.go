package citytagprocessor

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// limitsHarness runs citytag with a clock the test moves.
type limitsHarness struct {
	*harness
	clock atomic.Int64 // nanoseconds since the limiter's start
}

func newLimitsHarness(t testing.TB, cfg *Config) *limitsHarness {
	t.Helper()
	h := &limitsHarness{}
	h.harness = startHarness(t, cfg, func(tagger *cityTagger) {
		tagger.limits.elapsed = func() time.Duration { return time.Duration(h.clock.Load()) }
	})
	return h
}

func (h *limitsHarness) advance(d time.Duration) { h.clock.Add(int64(d)) }

// send passes md through citytag and returns the refusal message, "" when
// everything was accepted.
func (h *limitsHarness) send(t testing.TB, md pmetric.Metrics) string {
	t.Helper()
	err := h.proc.ConsumeMetrics(context.Background(), md)
	if err == nil {
		return ""
	}
	return refusal(t, err)
}

// activeSeries reads the bantay_citytag_active_series gauge by probe.
func (h *limitsHarness) activeSeries(t *testing.T) map[string]int64 {
	t.Helper()
	m, err := h.tel.GetMetric("bantay_citytag_active_series")
	require.NoError(t, err)
	out := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
		p, _ := dp.Attributes.Value("probe")
		out[p.AsString()] = dp.Value
	}
	return out
}

// passedTargets lists the target attribute of every point passed on, and resets the sink.
func (h *limitsHarness) passedTargets(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, md := range h.sink.AllMetrics() {
		for _, p := range pointAttrs(t, md) {
			out = append(out, p["target"].(string))
		}
	}
	h.sink.Reset()
	return out
}

// addTargets appends one uplink's resource with a latency histogram point
// (3 bounds: 6 series in the store) per target, all to Davao.
func addTargets(md pmetric.Metrics, u uplinkRes, targets ...string) pmetric.Metric {
	dsts := make([]string, len(targets))
	for i := range dsts {
		dsts[i] = "Davao"
	}
	m := addResource(md, u, dsts...)
	for i, name := range targets {
		m.Histogram().DataPoints().At(i).Attributes().PutStr("target", name)
	}
	return m
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

var (
	mnlGlobe = uplinkRes{"mnl-01", "Manila", "Globe", "5g"}
	mnlPLDT  = uplinkRes{"mnl-01", "Manila", "PLDT", "fiber"}
	dvoDITO  = uplinkRes{"dvo-01", "Davao", "DITO", "4g"}
)

func withSeriesLimit(n int) *Config {
	cfg := testConfig()
	cfg.Limits.MaxSeriesPerProbe = n
	return cfg
}

// TestSeriesLimit: a probe at its limit keeps every series it has, only
// points that would start a new one are rejected (and the sender told),
// and another probe is not affected.
func TestSeriesLimit(t *testing.T) {
	h := newLimitsHarness(t, withSeriesLimit(60)) // ten 6-series histograms
	md := pmetric.NewMetrics()
	addTargets(md, mnlGlobe, names("t", 0, 10)...)
	require.Empty(t, h.send(t, md))
	assert.Len(t, h.passedTargets(t), 10)
	assert.Equal(t, map[string]int64{"mnl-01": 60, "dvo-01": 0, "bag-01": 0}, h.activeSeries(t))

	h.advance(15 * time.Second)
	md = pmetric.NewMetrics()
	addTargets(md, mnlGlobe, append(names("t", 0, 5), append([]string{"new-1"}, names("t", 5, 10)...)...)...)
	addTargets(md, mnlPLDT, "t0") // the same target on another uplink is another series
	assert.Equal(t, `citytag rejected 2 of 12 points; first: series_limit (probe mnl-01, target "new-1"): new series of metric `+
		`"network.latency" (6 in the store) would exceed max_series_per_probe: probe has 60 of 60 active`, h.send(t, md))
	assert.Equal(t, names("t", 0, 10), h.passedTargets(t), "existing series keep flowing")

	md = pmetric.NewMetrics()
	addTargets(md, dvoDITO, names("t", 0, 10)...)
	require.Empty(t, h.send(t, md), "another probe has its own budget")
	assert.Len(t, h.passedTargets(t), 10)
	assert.Equal(t, map[string]int64{reasonSeriesLimit: 2}, h.rejected(t))
	assert.Equal(t, map[string]int64{"mnl-01": 60, "dvo-01": 60, "bag-01": 0}, h.activeSeries(t))
}

// TestIdleSeriesFreeTheirBudget: a series unseen for series_idle is
// forgotten and makes room; one still sent keeps counting.
func TestIdleSeriesFreeTheirBudget(t *testing.T) {
	h := newLimitsHarness(t, withSeriesLimit(60))
	send := func(targets ...string) string {
		md := pmetric.NewMetrics()
		addTargets(md, mnlGlobe, targets...)
		defer h.sink.Reset()
		return h.send(t, md)
	}
	require.Empty(t, send(names("old", 0, 5)...))
	h.advance(30 * time.Minute)
	require.Empty(t, send(names("kept", 0, 5)...))
	assert.Contains(t, send("new"), "series_limit")

	h.advance(30*time.Minute - time.Second)
	require.Empty(t, send(names("kept", 0, 5)...))
	h.tagger.limits.sweep()
	assert.Contains(t, send("new"), "series_limit", "old series are not idle for series_idle yet")

	h.advance(2 * time.Second)
	h.tagger.limits.sweep()
	assert.Equal(t, int64(30), h.activeSeries(t)["mnl-01"], "the old series are forgotten, the kept ones stay")
	require.Empty(t, send("new"))
	require.Empty(t, send(names("old", 0, 3)...), "a forgotten series is new again, and fits")
	assert.Contains(t, send(names("old", 3, 5)...), `series_limit (probe mnl-01, target "old4")`)
	assert.Equal(t, int64(60), h.activeSeries(t)["mnl-01"])
	assert.Len(t, h.tagger.limits.probes["mnl-01"].series, 10, "the map holds only what counts")
}

// TestSweeperForgetsIdleSeries runs the background sweep on the real clock.
func TestSweeperForgetsIdleSeries(t *testing.T) {
	cfg := withSeriesLimit(60)
	cfg.Limits.SeriesIdle = time.Millisecond // swept every second
	h := newHarness(t, cfg)
	md := pmetric.NewMetrics()
	addTargets(md, mnlGlobe, "a", "b")
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))
	lh := &limitsHarness{harness: h}
	assert.Equal(t, int64(12), lh.activeSeries(t)["mnl-01"])
	assert.Eventually(t, func() bool { return lh.activeSeries(t)["mnl-01"] == 0 }, 10*time.Second, 50*time.Millisecond)
}

// TestSeriesCountAsTheStoreCountsThem: a latency histogram with the
// probes' 28 bounds is 31 series, attempts, each failure reason and each
// round counter one, the uplink's target_info one; a probe whose target list fits exactly is
// accepted, one more counter is not.
func TestSeriesCountAsTheStoreCountsThem(t *testing.T) {
	h := newLimitsHarness(t, withSeriesLimit(2*metricmodel.SeriesPerTarget+1))
	md := pmetric.NewMetrics()
	addProbeResource(md, mnlGlobe, 2)
	require.Empty(t, h.send(t, md))
	assert.Equal(t, int64(2*metricmodel.SeriesPerTarget+1), h.activeSeries(t)["mnl-01"])

	md = pmetric.NewMetrics()
	addProbeResource(md, mnlGlobe, 2)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	dp := ms.At(1).Sum().DataPoints().AppendEmpty() // attempts of a target the probe did not have
	dp.Attributes().PutStr("target", "extra")
	dp.Attributes().PutStr("dst_city", "Cebu")
	dp.Attributes().PutStr("method", "tcp")
	dp.SetIntValue(1)
	dp.SetTimestamp(nowTS())
	assert.Contains(t, h.send(t, md), `first: series_limit (probe mnl-01, target "extra"): new series of metric "bantay.probe.attempts" (1 in the store)`)
	perTarget := 2 + len(metricmodel.FailureReasons) + len(metricmodel.RoundCounters)
	assert.Equal(t, 2*2*perTarget, h.sink.DataPointCount(), "the probe's own points passed both times")

	// A histogram given more bounds needs budget for its new buckets.
	h2 := newLimitsHarness(t, withSeriesLimit(metricmodel.SeriesPerTarget)) // 42: 31 fit, 43 do not
	md = pmetric.NewMetrics()
	addTargets(md, mnlGlobe, "a")
	require.Empty(t, h2.send(t, md))
	md = pmetric.NewMetrics()
	m := addTargets(md, mnlGlobe, "a")
	m.Histogram().DataPoints().At(0).ExplicitBounds().FromRaw(probeBounds)
	m.Histogram().DataPoints().At(0).BucketCounts().FromRaw(make([]uint64, len(probeBounds)+1))
	m.Histogram().DataPoints().At(0).BucketCounts().SetAt(0, 4)
	require.Empty(t, h2.send(t, md))
	assert.Equal(t, int64(31), h2.activeSeries(t)["mnl-01"])
	md = pmetric.NewMetrics()
	m = addTargets(md, mnlGlobe, "a")
	m.Histogram().DataPoints().At(0).ExplicitBounds().FromRaw(names2bounds(40))
	m.Histogram().DataPoints().At(0).BucketCounts().FromRaw(make([]uint64, 41))
	m.Histogram().DataPoints().At(0).BucketCounts().SetAt(0, 4)
	assert.Contains(t, h2.send(t, md), "series_limit")
}

func names2bounds(n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = float64(i + 1)
	}
	return b
}

// TestAttributeOrderDoesNotMakeANewSeries: the store sorts labels, so must
// the series key.
func TestAttributeOrderDoesNotMakeANewSeries(t *testing.T) {
	h := newLimitsHarness(t, withSeriesLimit(metricmodel.SeriesPerTarget))
	md := pmetric.NewMetrics()
	m := addTargets(md, mnlGlobe, "a")
	m.Histogram().DataPoints().At(0).Attributes().PutStr("zone", "x")
	m.Histogram().DataPoints().At(0).Attributes().PutInt("port", 7)
	require.Empty(t, h.send(t, md))

	md = pmetric.NewMetrics()
	dp := addResource(md, mnlGlobe).Histogram().DataPoints().AppendEmpty()
	dp.SetTimestamp(nowTS())
	attrs := dp.Attributes()
	attrs.PutStr("port", "7") // the store's label value of the int 7
	attrs.PutStr("zone", "x")
	attrs.PutStr("target", "a")
	attrs.PutStr("dst_city", "davao city") // canonicalised by tagging
	dp.ExplicitBounds().FromRaw([]float64{10, 20, 50})
	dp.BucketCounts().FromRaw([]uint64{1, 2, 1, 0})
	dp.SetCount(4)
	dp.SetSum(70)
	require.Empty(t, h.send(t, md))
	assert.Equal(t, int64(6), h.activeSeries(t)["mnl-01"])
}

// TestTargetInfoCounts: every distinct set of resource attributes is a
// target_info series in the store, so a resource attribute that changes
// with every request is held to the limit too: the resource is rejected.
func TestTargetInfoCounts(t *testing.T) {
	h := newLimitsHarness(t, withSeriesLimit(metricmodel.SeriesPerTarget))
	send := func(host string) string {
		md := pmetric.NewMetrics()
		addTargets(md, mnlGlobe, names("t", 0, 6)...)
		md.ResourceMetrics().At(0).Resource().Attributes().PutStr("host.name", host)
		defer h.sink.Reset()
		return h.send(t, md)
	}
	// Six small histograms (36 series); each new host.name starts one more
	// target_info until the limit is reached.
	require.Empty(t, send("h1")) // 36 + 1
	require.Empty(t, send("h1"))
	hosts := metricmodel.SeriesPerTarget - 36
	for i := 2; i <= hosts; i++ {
		require.Empty(t, send(fmt.Sprintf("h%d", i)))
	}
	assert.Equal(t, fmt.Sprintf(`citytag rejected 6 of 6 points; first: series_limit (probe mnl-01): resource attributes would start a new `+
		`target_info series beyond max_series_per_probe: probe has %d of %d active`, metricmodel.SeriesPerTarget, metricmodel.SeriesPerTarget), send("next"))

	md := pmetric.NewMetrics()
	addTargets(md, mnlGlobe, "t0") // no attributes beyond job and instance: no target_info
	require.Empty(t, h.send(t, md))
}

// TestAttributeLimits: too many attributes, a name or a value too long
// (of a point, a resource or the metric name) are rejected with the limit
// named; the other points go on.
func TestAttributeLimits(t *testing.T) {
	h := newLimitsHarness(t, testConfig())
	long := strings.Repeat("x", 300)
	md := pmetric.NewMetrics()
	m := addTargets(md, mnlGlobe, "ok", "many", "fits", long, "long-name")
	for i := range 7 { // 10 attributes after tagging, 17 with these
		m.Histogram().DataPoints().At(1).Attributes().PutStr(fmt.Sprintf("extra%d", i), "v")
	}
	for i := range 6 {
		m.Histogram().DataPoints().At(2).Attributes().PutStr(fmt.Sprintf("extra%d", i), "v")
	}
	m.Histogram().DataPoints().At(4).Attributes().PutStr(strings.Repeat("n", 200), "v")
	addTargets(md, mnlPLDT, "ok").SetName(strings.Repeat("m", 257))
	addTargets(md, dvoDITO, "ok")
	md.ResourceMetrics().At(2).Resource().Attributes().PutStr("process.command_line", long)

	assert.Equal(t, `citytag rejected 5 of 7 points; first: attribute_limit (probe mnl-01, target "many"): data point has 17 `+
		`attributes after tagging (citytag's 9 included); max_point_attributes is 16; 3 reasons in all: attribute_limit 1, `+
		`attribute_name_too_long 1, attribute_value_too_long 3`, h.send(t, md))
	assert.Equal(t, []string{"ok", "fits"}, h.passedTargets(t))
	assert.Equal(t, map[string]int64{reasonAttributeLimit: 1, reasonAttrNameTooLong: 1, reasonAttrValueTooLong: 3}, h.rejected(t))

	// Each detail names the attribute and the limit.
	for _, tc := range []struct {
		build func(md pmetric.Metrics)
		want  string
	}{
		{func(md pmetric.Metrics) { addTargets(md, mnlGlobe, long) },
			`attribute_value_too_long (probe mnl-01, target "` + long[:64] + `…"): attribute "target" is 300 bytes long; max_attribute_value_length is 256`},
		{func(md pmetric.Metrics) {
			addTargets(md, mnlGlobe, "a").Histogram().DataPoints().At(0).Attributes().PutStr(strings.Repeat("n", 200), "v")
		}, `attribute_name_too_long (probe mnl-01, target "a"): attribute name "` + strings.Repeat("n", 64) + `…" is 200 bytes long; max_attribute_name_length is 128`},
		{func(md pmetric.Metrics) { addTargets(md, mnlGlobe, "a").SetName(strings.Repeat("m", 257)) },
			`attribute_value_too_long (probe mnl-01, target "a"): metric name "` + strings.Repeat("m", 64) + `…" is 257 bytes long; max_attribute_value_length is 256`},
		{func(md pmetric.Metrics) {
			addTargets(md, mnlGlobe, "a")
			md.ResourceMetrics().At(0).Resource().Attributes().PutStr("process.command_line", long)
		}, `attribute_value_too_long (probe mnl-01): resource attribute "process.command_line" is 300 bytes long; max_attribute_value_length is 256`},
	} {
		md := pmetric.NewMetrics()
		tc.build(md)
		assert.Equal(t, "citytag rejected 1 of 1 points; first: "+tc.want, h.send(t, md))
	}
}

// TestLimitsOff: with every limit 0, citytag passes what it can place,
// however many series and whatever their attributes.
func TestLimitsOff(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = LimitsConfig{}
	require.NoError(t, cfg.Validate())
	h := newLimitsHarness(t, cfg)
	long := strings.Repeat("x", 10_000)
	md := pmetric.NewMetrics()
	m := addTargets(md, mnlGlobe, append(names("t", 0, 2000), long)...)
	for i := range 40 {
		m.Histogram().DataPoints().At(0).Attributes().PutStr(fmt.Sprintf("extra%d", i), long)
	}
	require.Empty(t, h.send(t, md))
	assert.Equal(t, 2001, h.sink.DataPointCount())
	_, err := h.tel.GetMetric("bantay_citytag_active_series")
	assert.Error(t, err, "no gauge without a series limit")
}

// TestSeriesLimitMatchesAModel drives random requests, clock steps and
// sweeps through citytag and through a plain model of the limit (a map of
// series → last seen per probe): every point's fate and every probe's
// count must agree.
func TestSeriesLimitMatchesAModel(t *testing.T) {
	const limit, cost, idle = 60, 6, time.Hour
	h := newLimitsHarness(t, withSeriesLimit(limit))
	model := map[string]map[string]time.Duration{"mnl-01": {}, "dvo-01": {}}
	uplinks := []uplinkRes{mnlGlobe, mnlPLDT, dvoDITO}
	rng := rand.New(rand.NewPCG(1, 2))
	var now time.Duration
	for step := range 2000 {
		switch r := rng.IntN(10); {
		case r < 2:
			d := time.Duration(rng.Int64N(int64(40 * time.Minute)))
			now += d
			h.advance(d)
		case r < 3:
			h.tagger.limits.sweep()
			for _, m := range model {
				for k, seen := range m {
					if seen < now-idle {
						delete(m, k)
					}
				}
			}
		default:
			u := uplinks[rng.IntN(len(uplinks))]
			var targets, want []string
			for range 1 + rng.IntN(5) {
				targets = append(targets, fmt.Sprintf("t%d", rng.IntN(25)))
			}
			m := model[u.probe]
			for _, tg := range targets {
				key := u.carrier + "/" + tg
				if _, known := m[key]; known || (len(m)+1)*cost <= limit {
					m[key] = now
					want = append(want, tg)
				}
			}
			md := pmetric.NewMetrics()
			addTargets(md, u, targets...)
			msg := h.send(t, md)
			got := h.passedTargets(t)
			require.Equal(t, want, got, "step %d: %s %v", step, u.probe, targets)
			require.Equal(t, len(want) == len(targets), msg == "", "step %d: %s", step, msg)
		}
		for probe, m := range model {
			ps := h.tagger.limits.probes[probe]
			ps.mu.Lock()
			active := ps.active
			ps.mu.Unlock()
			require.Equal(t, len(m)*cost, active, "step %d: %s", step, probe)
		}
	}
}

// TestSeriesLimitUnderConcurrency: requests of two probes, racing, never
// take a probe past its limit, and a series admitted once keeps flowing.
func TestSeriesLimitUnderConcurrency(t *testing.T) {
	const limit = 60
	h := newLimitsHarness(t, withSeriesLimit(limit))
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := map[string]map[string]bool{"mnl-01": {}, "dvo-01": {}}
	for w := range 8 {
		u := []uplinkRes{mnlGlobe, mnlPLDT, dvoDITO, dvoDITO}[w%4]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 150 {
				targets := []string{fmt.Sprintf("t%d", rng.IntN(30)), fmt.Sprintf("t%d", rng.IntN(30))}
				md := pmetric.NewMetrics()
				addTargets(md, u, targets...)
				passed := map[string]bool{}
				if out, err := h.tagger.processMetrics(context.Background(), md); err == nil {
					for _, a := range pointAttrs(t, out) {
						passed[a["target"].(string)] = true
					}
				}
				mu.Lock()
				for _, tg := range targets {
					key := u.carrier + "/" + tg
					if admitted[u.probe][key] && !passed[tg] {
						t.Errorf("%s %s was admitted before and is now rejected", u.probe, key)
					}
					if passed[tg] {
						admitted[u.probe][key] = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for probe, a := range admitted {
		ps := h.tagger.limits.probes[probe]
		ps.mu.Lock()
		active := ps.active
		ps.mu.Unlock()
		assert.LessOrEqual(t, len(a)*6, limit, probe)
		assert.Equal(t, len(a)*6, active, probe)
	}
}

func TestLimitsConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		set  func(*LimitsConfig)
		want string
	}{
		{func(l *LimitsConfig) { l.MaxSeriesPerProbe = -1 }, fmt.Sprintf("limits::max_series_per_probe: must be 0 (no limit) or at least %d", metricmodel.SeriesPerTarget)},
		{func(l *LimitsConfig) { l.MaxSeriesPerProbe = 37 }, fmt.Sprintf("limits::max_series_per_probe: must be 0 (no limit) or at least %d, the series of one target", metricmodel.SeriesPerTarget)},
		{func(l *LimitsConfig) { l.SeriesIdle = 0 }, "limits::series_idle: must be positive with max_series_per_probe set"},
		{func(l *LimitsConfig) { l.MaxPointAttributes = 10 }, "limits::max_point_attributes: must be 0 (no limit) or at least 12"},
		{func(l *LimitsConfig) { l.MaxAttributeNameLength = -5 }, "limits::max_attribute_name_length: must be 0 (no limit) or positive"},
		{func(l *LimitsConfig) { l.MaxAttributeNameLength = 20 }, `limits::max_attribute_name_length: 20 is shorter than "deployment.environment.name"`},
		{func(l *LimitsConfig) { l.MaxAttributeValueLength = -1 }, "limits::max_attribute_value_length: must be 0 (no limit) or at least 128"},
		{func(l *LimitsConfig) { l.MaxAttributeValueLength = 5 }, "limits::max_attribute_value_length: must be 0 (no limit) or at least 128, the longest target or uplink name a probe accepts"},
	} {
		cfg := testConfig()
		tc.set(&cfg.Limits)
		assert.ErrorContains(t, cfg.Validate(), tc.want)
	}
	cfg := testConfig()
	cfg.Limits = LimitsConfig{SeriesIdle: -time.Second} // no series limit: the idle time is unused
	assert.NoError(t, cfg.Validate())
	cfg.Limits = LimitsConfig{MaxSeriesPerProbe: metricmodel.SeriesPerTarget, SeriesIdle: time.Minute, MaxPointAttributes: 12, MaxAttributeNameLength: 27, MaxAttributeValueLength: metricmodel.MaxNameLength}
	assert.NoError(t, cfg.Validate(), "the smallest limits Bantay's own data fits")
}

// TestDefaultLimitsFitABigProbe: the defaults hold a probe with 300
// targets on two uplinks twice over, so it can replace its whole target
// list while the old series age out.
func TestDefaultLimitsFitABigProbe(t *testing.T) {
	h := newLimitsHarness(t, testConfig())
	for _, list := range []string{"old", "new"} {
		md := pmetric.NewMetrics()
		addProbeResource(md, mnlGlobe, 300, list)
		addProbeResource(md, mnlPLDT, 300, list)
		require.Empty(t, h.send(t, md))
	}
	// Both uplinks' resources make one target_info (the carrier is no resource attribute in the store).
	assert.Equal(t, int64(2*2*(300*metricmodel.SeriesPerTarget)+1), h.activeSeries(t)["mnl-01"])
	assert.Less(t, h.activeSeries(t)["mnl-01"], int64(createDefaultConfig().(*Config).Limits.MaxSeriesPerProbe))
}

var probeBounds = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}

// addProbeResource appends one uplink's resource as a Bantay probe sends
// it: per target a latency histogram with the 28 bounds, attempts and six
// failure reasons and the four round counters (metricmodel.SeriesPerTarget
// series in the store), and deployment.environment.name
// (a target_info series). Target names get the optional prefix.
func addProbeResource(md pmetric.Metrics, u uplinkRes, targets int, prefix ...string) {
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "bantay-probe")
	res.PutStr("service.instance.id", u.probe)
	res.PutStr("deployment.environment.name", "production")
	res.PutStr("bantay.probe.city", u.city)
	res.PutStr("bantay.uplink.carrier", u.carrier)
	res.PutStr("bantay.uplink.network_type", u.network)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/bantay-noc/bantay/probes")
	lat := sm.Metrics().AppendEmpty()
	lat.SetName("network.latency")
	lat.SetUnit("ms")
	hist := lat.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	counter := func(name, unit string) pmetric.Sum {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		m.SetUnit(unit)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		return s
	}
	attempts, failures := counter("bantay.probe.attempts", "{attempt}"), counter("bantay.probe.failures", "{failure}")
	var roundCounters []pmetric.Sum
	for _, name := range metricmodel.RoundCounters {
		roundCounters = append(roundCounters, counter(name, "1"))
	}
	ts := nowTS()
	cities := []string{"Davao", "Baguio", "Cebu", "Manila"}
	for i := range targets {
		target := fmt.Sprintf("%starget-%03d", strings.Join(prefix, ""), i)
		put := func(a pcommon.Map) {
			a.PutStr("target", target)
			a.PutStr("dst_city", cities[i%len(cities)])
			a.PutStr("method", "udp")
		}
		dp := hist.DataPoints().AppendEmpty()
		put(dp.Attributes())
		dp.SetTimestamp(ts)
		dp.ExplicitBounds().FromRaw(probeBounds)
		counts := make([]uint64, len(probeBounds)+1)
		counts[8] = 10
		dp.BucketCounts().FromRaw(counts)
		dp.SetCount(10)
		dp.SetSum(140)
		a := attempts.DataPoints().AppendEmpty()
		put(a.Attributes())
		a.SetTimestamp(ts)
		a.SetIntValue(10)
		for _, r := range []string{"timeout", "refused", "dns", "tls", "http_status", "other"} {
			f := failures.DataPoints().AppendEmpty()
			put(f.Attributes())
			f.Attributes().PutStr("reason", r)
			f.SetTimestamp(ts)
			f.SetIntValue(0)
		}
		for _, c := range roundCounters {
			p := c.DataPoints().AppendEmpty()
			put(p.Attributes())
			p.SetTimestamp(ts)
			p.SetIntValue(0)
		}
	}
}

// TestKnownSeriesCostNoAllocation: once a probe's series are known, the
// limits add no allocation to a request.
func TestKnownSeriesCostNoAllocation(t *testing.T) {
	in := pmetric.NewMetrics()
	addProbeResource(in, mnlGlobe, 20)
	addProbeResource(in, mnlPLDT, 20)
	allocs := func(cfg *Config) float64 {
		p, _, err := newProcessor(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
		require.NoError(t, err)
		// AllocsPerRun counts every goroutine's allocations, so a
		// background one (a timer, the runtime) can add to a run; the
		// fewest of three runs is the request's own count.
		fewest := math.Inf(1)
		for range 3 {
			fewest = min(fewest, testing.AllocsPerRun(50, func() {
				md := pmetric.NewMetrics()
				in.CopyTo(md)
				if err := p.ConsumeMetrics(context.Background(), md); err != nil {
					t.Fatal(err)
				}
			}))
		}
		return fewest
	}
	off := testConfig()
	off.Limits = LimitsConfig{}
	base, got := allocs(off), allocs(testConfig())
	t.Logf("allocations per request of %d points: %v with limits, %v without", in.DataPointCount(), got, base)
	assert.Equal(t, base, got)
}

// BenchmarkConsumeMetrics: one request of a probe with two uplinks and 50
// targets each (800 points, 3,802 series in the store), all series known,
// through citytag with the default limits and with every limit off.
//
//	go test -run XXX -bench BenchmarkConsumeMetrics -benchtime 2s ./collector/processor/citytagprocessor/
func BenchmarkConsumeMetrics(b *testing.B) {
	in := pmetric.NewMetrics()
	addProbeResource(in, mnlGlobe, 50)
	addProbeResource(in, mnlPLDT, 50)
	for _, bc := range []struct {
		name   string
		limits LimitsConfig
	}{
		{"limits=off", LimitsConfig{}},
		{"limits=default", createDefaultConfig().(*Config).Limits},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.Limits = bc.limits
			p, _, err := newProcessor(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
			require.NoError(b, err)
			copies := make([]pmetric.Metrics, 0, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%64 == 0 { // copying the request is not what is measured
					b.StopTimer()
					copies = copies[:0]
					for range 64 {
						md := pmetric.NewMetrics()
						in.CopyTo(md)
						copies = append(copies, md)
					}
					b.StartTimer()
				}
				if err := p.ConsumeMetrics(context.Background(), copies[i%64]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(in.DataPointCount()), "points/op")
		})
	}
}
