package store

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// appendCall is one append exactly as the TSDB receives it (the floats as
// bits, so that NaN and stale markers compare), its exemplars apart from
// its options.
type appendCall struct {
	ls        string
	st, t     int64
	v         uint64
	h         *histogram.Histogram
	fh        *histogram.FloatHistogram
	opts      storage.AppendV2Options
	exemplars []appendedExemplar
}

type appendedExemplar struct {
	ls    string
	v     uint64
	ts    int64
	hasTs bool
}

// callRecorder is an appender that stores nothing and records every call.
type callRecorder struct {
	storage.AppenderV2
	calls []appendCall
}

// Append copies the exemplars, as the head does: the translator reuses one
// slice for a histogram point's buckets. No exemplars are recorded as nil,
// whether nil or empty (the translator passes either; the head only ranges
// over them).
func (r *callRecorder) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	var exs []appendedExemplar
	for _, e := range opts.Exemplars {
		exs = append(exs, appendedExemplar{ls: e.Labels.String(), v: math.Float64bits(e.Value), ts: e.Ts, hasTs: e.HasTs})
	}
	opts.Exemplars = nil
	r.calls = append(r.calls, appendCall{ls: ls.String(), st: st, t: t, v: math.Float64bits(v), h: h, fh: fh, opts: opts, exemplars: exs})
	return 0, nil
}

// probeResource is one probe uplink's resource as citytag leaves it, with
// the attributes beyond job and instance that make a target_info series.
func probeResource(rm pmetric.ResourceMetrics, instance string) {
	a := rm.Resource().Attributes()
	a.PutStr("service.name", "bantay-probe")
	a.PutStr("service.instance.id", instance)
	a.PutStr("bantay.uplink.carrier", "Globe")
	a.PutStr("bantay.uplink.network_type", "5g")
}

var probeBounds = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}

func histogramPoint(m pmetric.Metric, ts time.Time, target string) pmetric.HistogramDataPoint {
	h := m.Histogram()
	if m.Type() != pmetric.MetricTypeHistogram {
		h = m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	dp := h.DataPoints().AppendEmpty()
	dp.Attributes().PutStr("src_city", "Manila")
	dp.Attributes().PutStr("dst_city", "Davao")
	dp.Attributes().PutStr("target", target)
	dp.ExplicitBounds().FromRaw(probeBounds)
	counts := make([]uint64, len(probeBounds)+1)
	counts[10], counts[11] = uint64(ts.Unix()%7), 1
	dp.BucketCounts().FromRaw(counts)
	dp.SetCount(counts[10] + 1)
	dp.SetSum(float64(ts.Unix()%100) + 0.25)
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Hour)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	return dp
}

// addExemplar adds an exemplar of value v (int if it is whole) at ts to
// exs, with a trace and span id unless trace is false.
func addExemplar(exs pmetric.ExemplarSlice, ts time.Time, v float64, trace bool) pmetric.Exemplar {
	ex := exs.AppendEmpty()
	if v == math.Trunc(v) && !math.IsInf(v, 0) {
		ex.SetIntValue(int64(v))
	} else {
		ex.SetDoubleValue(v)
	}
	ex.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	if trace {
		id := byte(exs.Len())
		ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, id})
		ex.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, id})
	}
	return ex
}

func numberPoint(dps pmetric.NumberDataPointSlice, ts time.Time, v float64) pmetric.NumberDataPoint {
	dp := dps.AppendEmpty()
	dp.SetDoubleValue(v)
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Hour)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	return dp
}

// newMetric adds a metric to a new scope of a new probe resource.
func newMetric(md pmetric.Metrics, name string) pmetric.Metric {
	rm := md.ResourceMetrics().AppendEmpty()
	probeResource(rm, "mnl-01")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	return m
}

type cacheCase struct {
	name string
	// cached: from the second request on, every stream is cached;
	// cachedUTF8: only so when the translator keeps UTF-8 names.
	cached, cachedUTF8 bool
	md                 func(ts time.Time) pmetric.Metrics
}

// seriesCacheCorpus is the probes' shapes, the translator's corners and the
// hostile corpus's shapes that reach the store (collector/hostile_test.go).
func seriesCacheCorpus() []cacheCase {
	withHistogram := func(mutate func(dp pmetric.HistogramDataPoint)) func(time.Time) pmetric.Metrics {
		return func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			m := newMetric(md, "network.latency")
			m.SetUnit("ms")
			mutate(histogramPoint(m, ts, "t-1"))
			histogramPoint(m, ts, "t-2")
			return md
		}
	}
	return []cacheCase{
		{name: "probe export: histograms, a counter and a gauge in two scopes", cached: true, md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			for _, probe := range []string{"mnl-01", "dvo-01"} {
				rm := md.ResourceMetrics().AppendEmpty()
				probeResource(rm, probe)
				sm := rm.ScopeMetrics().AppendEmpty()
				sm.Scope().SetName("github.com/bantay-noc/bantay/probes")
				sm.Scope().SetVersion("0.1.0")
				sm.Scope().Attributes().PutStr("probe.method", "icmp")
				m := sm.Metrics().AppendEmpty()
				m.SetName("network.latency")
				m.SetUnit("ms")
				m.SetDescription("round-trip time")
				for i := range 5 {
					histogramPoint(m, ts, "target-"+strconv.Itoa(i))
				}
				sm = rm.ScopeMetrics().AppendEmpty()
				sm.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
				c := sm.Metrics().AppendEmpty()
				c.SetName("bantay.probe.sent")
				c.SetUnit("{probe}")
				sum := c.SetEmptySum()
				sum.SetIsMonotonic(true)
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				dp := sum.DataPoints().AppendEmpty()
				dp.SetIntValue(ts.Unix())
				dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
				dp.Attributes().PutStr("method", "icmp")
				g := sm.Metrics().AppendEmpty()
				g.SetName("bantay.queue.depth")
				numberPoint(g.SetEmptyGauge().DataPoints(), ts, 3)
			}
			return md
		}},
		{name: "histogram without sum", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.RemoveSum()
		})},
		{name: "histogram with no recorded value (stale)", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		})},
		{name: "bucket counts not matching bounds", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.BucketCounts().FromRaw([]uint64{4})
		})},
		{name: "no bounds", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.ExplicitBounds().FromRaw(nil)
			dp.BucketCounts().FromRaw([]uint64{4})
		})},
		{name: "non-increasing bounds", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.ExplicitBounds().FromRaw([]float64{10, 50, 20, 100})
			dp.BucketCounts().FromRaw([]uint64{1, 0, 0, 0, 3})
		})},
		{name: "NaN sum", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) { dp.SetSum(math.NaN()) })},
		{name: "timestamp 0 (1970)", cached: true, md: func(ts time.Time) pmetric.Metrics {
			// A resource of job and instance only: with a target_info, the
			// translator would write one every 2.5 minutes since 1970
			// (citytag refuses such a point before it reaches the store).
			md := withHistogram(func(dp pmetric.HistogramDataPoint) { dp.SetTimestamp(0) })(ts)
			md.ResourceMetrics().At(0).Resource().Attributes().RemoveIf(func(k string, _ pcommon.Value) bool {
				return strings.HasPrefix(k, "bantay.")
			})
			return md
		}},
		{name: "label value with newline, quotes and control characters", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.Attributes().PutStr("dst_city", "Davao\"\n} evil=\"1")
			dp.Attributes().PutStr("target", "t\x00\x1b[2J\x7f")
		})},
		{name: "label value of invalid UTF-8 and emoji", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.Attributes().PutStr("target", "t\xff\xfe")
			dp.Attributes().PutStr("reflector", "reflector 🌴")
		})},
		{name: "attribute names to sanitise and reserved ones", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.Attributes().PutStr("http.method", "GET")
			dp.Attributes().PutStr("1st", "x")
			dp.Attributes().PutStr("_private", "y")
			dp.Attributes().PutStr("__name__", "evil")
			dp.Attributes().PutStr("le", "0.1")
			dp.Attributes().PutStr("job", "not-the-probe")
		})},
		{name: "non-string attribute values", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.Attributes().PutInt("port", 7001)
			dp.Attributes().PutBool("ipv6", true)
			dp.Attributes().PutDouble("weight", 0.5)
			dp.Attributes().PutEmptySlice("hops").AppendEmpty().SetStr("a")
		})},
		{name: "5000 attributes on a point", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			for i := range 5000 {
				dp.Attributes().PutStr("a"+strconv.Itoa(i), "v")
			}
		})},
		{name: "the same stream twice in a request, conflicting, and in another attribute order", cached: true, md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			m := newMetric(md, "network.latency")
			histogramPoint(m, ts, "t-1")
			histogramPoint(m, ts, "t-1").SetSum(1e6)
			dp := m.Histogram().DataPoints().AppendEmpty()
			dp.Attributes().PutStr("target", "t-1")
			dp.Attributes().PutStr("dst_city", "Davao")
			dp.Attributes().PutStr("src_city", "Manila")
			histogramPoint(m, ts, "t-1").CopyTo(dp)
			dp.SetCount(99)
			return md
		}},
		{name: "sums and gauges: int, double, non-monotonic, stale, gauge exemplar", cached: true, md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			m := newMetric(md, "bantay.probe.inflight")
			s := m.SetEmptySum()
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			numberPoint(s.DataPoints(), ts, -2.5).Attributes().PutStr("uplink", "a")
			s.DataPoints().AppendEmpty().SetIntValue(7)
			s.DataPoints().At(1).SetTimestamp(pcommon.NewTimestampFromTime(ts))
			numberPoint(s.DataPoints(), ts, 1).SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			s.DataPoints().At(2).Attributes().PutStr("uplink", "c")
			gm := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
			gm.SetName("bantay.clock.skew")
			gm.SetUnit("s")
			gp := numberPoint(gm.SetEmptyGauge().DataPoints(), ts, 0.004)
			gp.Exemplars().AppendEmpty().SetDoubleValue(1) // the translator ignores a gauge's exemplars
			return md
		}},
		{name: "resources: job only, a namespace, repeated, points over 10 minutes", cached: true, md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("service.name", "only-job")
			g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
			g.SetName("up")
			numberPoint(g.SetEmptyGauge().DataPoints(), ts, 1)
			for range 2 { // the same resource twice: its target_info once per timestamp
				rm = md.ResourceMetrics().AppendEmpty()
				probeResource(rm, "bcd-01")
				rm.Resource().Attributes().PutStr("service.namespace", "noc")
				g = rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
				g.SetName("bantay.backlog")
				dps := g.SetEmptyGauge().DataPoints()
				for _, ago := range []time.Duration{10 * time.Minute, 7 * time.Minute, 90 * time.Second, 0} {
					numberPoint(dps, ts.Add(-ago), ago.Seconds()).Attributes().PutStr("ago", ago.String())
				}
			}
			rm = md.ResourceMetrics().AppendEmpty() // a resource without metrics
			probeResource(rm, "empty-01")
			return md
		}},
		{name: "histogram exemplars: several buckets, two in one, above the last bound, on a bound, out of time order", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			ts := dp.Timestamp().AsTime()
			exs := dp.Exemplars()
			addExemplar(exs, ts, 0.25, true)
			addExemplar(exs, ts.Add(-2*time.Second), 12.5, true) // on the bound: in le="12.5"
			addExemplar(exs, ts.Add(-3*time.Second), 11.75, true)
			addExemplar(exs, ts.Add(-time.Second), 11.5, false)
			addExemplar(exs, ts, 60, true)
			addExemplar(exs, ts.Add(-time.Second), 6000, true) // above 5000: in le="+Inf"
			addExemplar(exs, ts.Add(-2*time.Second), 9000.5, false)
		})},
		{name: "histogram exemplars not sorted by value, NaN, at timestamp 0, on a stale point", cached: true, md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			m := newMetric(md, "network.latency")
			// The translator takes them in order: 20 stops nothing below
			// le="20", so 3 lands there too.
			exs := histogramPoint(m, ts, "t-1").Exemplars()
			addExemplar(exs, ts, 20, true)
			addExemplar(exs, ts, 3, true)
			addExemplar(exs, ts, math.NaN(), true)
			addExemplar(exs, ts, 1, false).SetTimestamp(0)
			dp := histogramPoint(m, ts, "t-2")
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			addExemplar(dp.Exemplars(), ts, 7, true)
			histogramPoint(m, ts, "t-3") // none
			return md
		}},
		{name: "exemplar attributes: short, over the rune limit, named like the trace labels", cached: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			ts := dp.Timestamp().AsTime()
			exs := dp.Exemplars()
			a := addExemplar(exs, ts, 0.25, true).FilteredAttributes()
			a.PutStr("reflector", "dvo-r1 🌴")
			a.PutInt("attempt", 2)
			a.PutStr("trace_id", "overridden by the trace id")
			a = addExemplar(exs, ts, 1, true).FilteredAttributes()
			a.PutStr("error", strings.Repeat("timeout ", 10)) // 63 runes of ids + 85: over 128
			a = addExemplar(exs, ts, 2, false).FilteredAttributes()
			a.PutStr("trace_id", "kept: no trace id")
			a.PutStr("span_id", "kept: no span id")
			a.PutStr("error", strings.Repeat("é", 75)) // 25 + 23 + 80: 128 runes, kept
			a = addExemplar(exs, ts, 3, false).FilteredAttributes()
			a.PutStr("error", strings.Repeat("é", 124)) // 5 + 124: 129 runes, dropped
		})},
		{name: "sums with exemplars: int and double, monotonic and not, out of time order, none", cached: true, md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			m := newMetric(md, "bantay.probe.failed")
			s := m.SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dp := numberPoint(s.DataPoints(), ts, 4)
			dp.Attributes().PutStr("reason", "timeout")
			addExemplar(dp.Exemplars(), ts, 1, true)
			addExemplar(dp.Exemplars(), ts.Add(-time.Second), 1000.5, true).FilteredAttributes().PutStr("target", "t-1")
			addExemplar(dp.Exemplars(), ts.Add(-time.Second), 2, false)
			numberPoint(s.DataPoints(), ts, 9).Attributes().PutStr("reason", "refused")
			sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
			sm.SetName("bantay.probe.inflight")
			ns := sm.SetEmptySum()
			ns.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			addExemplar(numberPoint(ns.DataPoints(), ts, -1).Exemplars(), ts, 0.5, true)
			return md
		}},
		// Not cached: what the translator warns about or refuses, and the
		// shapes the cache leaves to it.
		{name: "attribute names that collide after sanitising", cachedUTF8: true, md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.Attributes().PutStr("a.b", "1")
			dp.Attributes().PutStr("a_b", "2")
		})},
		{name: "+Inf bound", md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.ExplicitBounds().FromRaw([]float64{10, math.Inf(1)})
			dp.BucketCounts().FromRaw([]uint64{1, 0, 3})
		})},
		{name: "exemplar without a value", md: withHistogram(func(dp pmetric.HistogramDataPoint) {
			dp.Exemplars().AppendEmpty().SetTimestamp(dp.Timestamp())
		})},
		{name: "empty metric next to a good one", md: func(ts time.Time) pmetric.Metrics {
			md := withHistogram(func(pmetric.HistogramDataPoint) {})(ts)
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty().SetName("empty")
			return md
		}},
		{name: "delta sum", md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			s := newMetric(md, "delta").SetEmptySum()
			s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			numberPoint(s.DataPoints(), ts, 1)
			return md
		}},
		{name: "summary", md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			dp := newMetric(md, "rtt").SetEmptySummary().DataPoints().AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			dp.SetCount(3)
			dp.SetSum(30)
			q := dp.QuantileValues().AppendEmpty()
			q.SetQuantile(0.5)
			q.SetValue(10)
			return md
		}},
		{name: "exponential histogram", md: func(ts time.Time) pmetric.Metrics {
			md := pmetric.NewMetrics()
			h := newMetric(md, "rtt").SetEmptyExponentialHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dp := h.DataPoints().AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			dp.SetCount(2)
			dp.Positive().BucketCounts().FromRaw([]uint64{1, 1})
			return md
		}},
	}
}

// dumpStore is every series and sample in s, for comparison.
func dumpStore(t *testing.T, s *Store) string {
	t.Helper()
	q, err := s.DB().Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	var b strings.Builder
	for set.Next() {
		fmt.Fprintln(&b, set.At().Labels())
		it := set.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&b, " %d %x", ts, math.Float64bits(v))
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				fmt.Fprintf(&b, " %d %s", ts, h)
			case chunkenc.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				fmt.Fprintf(&b, " %d %s", ts, h)
			}
		}
		require.NoError(t, it.Err())
		b.WriteByte('\n')
	}
	require.NoError(t, set.Err())
	eq, err := s.DB().ExemplarQuerier(context.Background())
	require.NoError(t, err)
	exs, err := eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")})
	require.NoError(t, err)
	slices.SortFunc(exs, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	for _, r := range exs {
		fmt.Fprintln(&b, "exemplars of", r.SeriesLabels)
		for _, e := range r.Exemplars {
			fmt.Fprintf(&b, " %d %x %s\n", e.Ts, math.Float64bits(e.Value), e.Labels)
		}
	}
	return b.String()
}

// translatorSettingsVariants are the store's settings and one with every
// option that changes labels turned the other way.
func translatorSettingsVariants() map[string]otlptranslator.Settings {
	other := config.DefaultOTLPConfig
	other.TranslationStrategy = "NoTranslation"
	other.PromoteAllResourceAttributes = true
	other.IgnoreResourceAttributes = []string{"bantay.uplink.network_type"}
	other.KeepIdentifyingResourceAttributes = true
	other.PromoteScopeMetadata = true
	settings := translatorSettings(other, time.Minute)
	settings.EnableTypeAndUnitLabels = true
	settings.Namespace = "ns"
	return map[string]otlptranslator.Settings{
		"default":     translatorSettings(config.DefaultOTLPConfig, 5*time.Minute),
		"alternative": settings,
	}
}

// TestCachedAppendIsTheTranslators sends each request of the corpus three
// times (15 s apart) to a store and to a store whose cache never answers:
// the cached appends must be the translator's, call for call, and both
// stores must hold the same series and samples, answer the same and count
// the same.
func TestCachedAppendIsTheTranslators(t *testing.T) {
	for variant, settings := range translatorSettingsVariants() {
		for _, tc := range seriesCacheCorpus() {
			t.Run(variant+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				cached := tc.cached || tc.cachedUTF8 && settings.AllowUTF8
				s, ref := openStore(t, t.TempDir()), openStore(t, t.TempDir())
				defer s.Close()
				defer ref.Close()
				s.settings, ref.settings = settings, settings
				s.series.settings = settings
				ref.series.gen = math.MaxUint64 // no DB has this generation: nothing is cached
				start := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
				for round := range 3 {
					md := tc.md(start.Add(time.Duration(round) * 15 * time.Second))
					req, ok := s.series.lookup(md, 0)
					assert.Equal(t, cached && round > 0, ok, "round %d cached", round)
					if ok {
						want := &callRecorder{}
						conv := otlptranslator.NewPrometheusConverter(want)
						_, wantErr := conv.FromMetrics(ctx, md, settings)
						got := &callRecorder{}
						gotErr := s.series.appendCached(ctx, got, md, req)
						require.Equal(t, want.calls, got.calls)
						require.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(gotErr))
					}
					gotErr, wantErr := s.AppendMetrics(ctx, md), ref.AppendMetrics(ctx, md)
					require.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(gotErr), "round %d", round)
				}
				require.Equal(t, dumpStore(t, ref), dumpStore(t, s))
				assert.NotEmpty(t, dumpStore(t, s))
				assert.Equal(t, testutil.ToFloat64(ref.appendedSamples), testutil.ToFloat64(s.appendedSamples), "appended")
				assert.Equal(t, counts(t, ref.rejectedSamples), counts(t, s.rejectedSamples), "rejected")
				assert.Equal(t, counts(t, ref.warnings), counts(t, s.warnings), "warnings")
				wantCached := 0.0
				if cached {
					wantCached = 2
				}
				assert.Equal(t, wantCached, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)))
			})
		}
	}
}

// counts is a counter vector's values by label values.
func counts(t *testing.T, c *prometheus.CounterVec) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	for m := range ch {
		var pb dto.Metric
		require.NoError(t, m.Write(&pb))
		var k []string
		for _, l := range pb.GetLabel() {
			k = append(k, l.GetValue())
		}
		out[strings.Join(k, ",")] = pb.GetCounter().GetValue()
	}
	return out
}

// cachedCount is the latest _count of the latencyBatch series at ts.
func cachedCount(t *testing.T, s *Store, ts time.Time) float64 {
	t.Helper()
	q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil, "network_latency_milliseconds_count", ts)
	require.NoError(t, err)
	r := q.Exec(context.Background())
	require.NoError(t, r.Err)
	v, err := r.Vector()
	require.NoError(t, err)
	require.Len(t, v, 1)
	return v[0].F
}

func headSeries(s *Store) (n uint64) {
	s.DB().withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { n = db.Head().NumSeries() })
	return n
}

// TestCachedReferenceOfAGarbageCollectedSeries: once head truncation has
// collected a cached stream's series, the next append by its stale
// reference creates the series again and the cache takes the new reference.
func TestCachedReferenceOfAGarbageCollectedSeries(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(start, []uint64{1, 0, 0, 0}, 5)))
	require.Equal(t, 1, s.series.entries())
	var before []uint64
	for _, pe := range s.series.points.cur {
		for i := range pe.refs {
			before = append(before, pe.refs[i].Load())
		}
	}
	require.NotContains(t, before, uint64(0))

	s.DB().withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { require.NoError(t, db.Head().Truncate(start.UnixMilli()+1)) })
	require.Zero(t, headSeries(s), "the head collected the series")

	next := start.Add(15 * time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(next, []uint64{2, 1, 0, 0}, 9)))
	assert.Equal(t, 1.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)), "appended by the stale references")
	assert.Equal(t, uint64(6), headSeries(s))
	assert.Equal(t, 3.0, cachedCount(t, s, next))
	for _, pe := range s.series.points.cur {
		for i := range pe.refs {
			assert.NotContains(t, before, pe.refs[i].Load(), "the cache took the new reference")
		}
	}
}

// TestReopenEmptiesTheSeriesCache: the TSDB a failed write reopens is a
// new head whose references mean nothing (and may name other series), so
// the first request after it is translated and learnt afresh.
func TestReopenEmptiesTheSeriesCache(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for i := range 2 {
		require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(start.Add(time.Duration(i)*time.Second), []uint64{1, 0, 0, 0}, 5)))
	}
	require.Equal(t, 1.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)))
	// Poison the cached references: after the reopen they must not be used.
	for _, pe := range s.series.points.cur {
		for i := range pe.refs {
			pe.refs[i].Store(1)
		}
	}
	require.NoError(t, s.reopen())

	ts := start.Add(time.Minute)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(ts, []uint64{1, 2, 0, 0}, 5)))
	assert.Equal(t, 1.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)), "translated after the reopen")
	assert.Equal(t, 3.0, cachedCount(t, s, ts))
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(ts.Add(time.Second), []uint64{1, 2, 1, 0}, 5)))
	assert.Equal(t, 2.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)), "cached again")
	assert.Equal(t, 4.0, cachedCount(t, s, ts.Add(time.Second)))
	assert.Equal(t, uint64(6), headSeries(s))
}

// TestUnusedStreamsLeaveTheSeriesCache: a stream not sent during a whole
// rotation is dropped; one sent is kept.
func TestUnusedStreamsLeaveTheSeriesCache(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	send := func(i int, name string) {
		md := gaugeSamples(name, []time.Time{start.Add(time.Duration(i) * time.Second)})
		require.NoError(t, s.AppendMetrics(context.Background(), md))
	}
	rotate := func() {
		s.series.rotateAt.Store(0)
		s.series.maybeRotate()
	}
	send(0, "kept")
	send(0, "dropped")
	require.Equal(t, 2, s.series.entries())
	rotate()
	send(1, "kept") // found in the previous generation: promoted
	rotate()
	assert.Equal(t, 1, s.series.entries())
	send(2, "kept")
	assert.Equal(t, 2.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)))
	send(2, "dropped")
	assert.Equal(t, 2.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)), "translated again")
	assert.Equal(t, 2, s.series.entries())
}

// TestTolerantAppenderDoesNotAllocate: it allocated once per sample (the
// target of errors.As escaped to the heap) — 3,100 allocations in a
// request of 100 probe histograms.
func TestTolerantAppenderDoesNotAllocate(t *testing.T) {
	app := &tolerantAppender{AppenderV2: nopAppender{}, metadata: &metadataIndex{}}
	ls := labels.FromStrings(model.MetricNameLabel, "up")
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = app.Append(1, ls, 0, 1, 1, nil, nil, storage.AppendV2Options{MetricFamilyName: "up"})
	})
	assert.Zero(t, allocs)
}

type nopAppender struct{ storage.AppenderV2 }

func (nopAppender) Append(ref storage.SeriesRef, _ labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	return ref, nil
}

// TestNHCBHistogramsAreLeftToTheTranslator: with histograms converted to
// native histograms with custom buckets, the cache leaves requests holding
// a histogram to the translator and still caches gauges and sums.
func TestNHCBHistogramsAreLeftToTheTranslator(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	s.settings.ConvertHistogramsToNHCB = true
	s.series.settings = s.settings
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for i := range 3 {
		ts := start.Add(time.Duration(i) * time.Second)
		require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(ts, []uint64{1, 0, 0, 0}, 5)))
		require.NoError(t, s.AppendMetrics(context.Background(), gaugeSamples("up", []time.Time{ts})))
	}
	assert.Equal(t, 2.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)), "the gauge's requests")
	assert.Equal(t, 4.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathTranslated)))
}

// TestExemplarWithoutAValueIsLeftToTheTranslator: the translator refuses a
// point with an exemplar of neither int nor double, so a cached stream
// whose point carries one is translated (and refused), not appended with
// an exemplar of value 0.
func TestExemplarWithoutAValueIsLeftToTheTranslator(t *testing.T) {
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for name, md := range map[string]func(ts time.Time, valued bool) pmetric.Metrics{
		"histogram": func(ts time.Time, valued bool) pmetric.Metrics {
			md := pmetric.NewMetrics()
			ex := histogramPoint(newMetric(md, "network.latency"), ts, "t-1").Exemplars().AppendEmpty()
			if valued {
				ex.SetDoubleValue(11)
			}
			return md
		},
		"sum": func(ts time.Time, valued bool) pmetric.Metrics {
			md := pmetric.NewMetrics()
			s := newMetric(md, "bantay.probe.failed").SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			ex := numberPoint(s.DataPoints(), ts, 1).Exemplars().AppendEmpty()
			if valued {
				ex.SetIntValue(1)
			}
			return md
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			for i := range 2 {
				require.NoError(t, s.AppendMetrics(context.Background(), md(start.Add(time.Duration(i)*time.Second), true)))
			}
			require.Equal(t, 1.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)))
			err := s.AppendMetrics(context.Background(), md(start.Add(2*time.Second), false))
			require.ErrorContains(t, err, "unsupported exemplar value type")
			assert.Equal(t, 1.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathCached)), "translated")
			assert.Equal(t, 2.0, testutil.ToFloat64(s.appendPaths.WithLabelValues(pathTranslated)))
		})
	}
}
