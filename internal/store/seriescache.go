package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Why a series cache: Prometheus's OTLP translator builds, sanitises and
// sorts a label set for every sample of every point (31 for one probe
// histogram), and the head then hashes it to find the series, although a
// probe sends the same streams every 15 s. The cache remembers, for each
// OTLP stream (resource + scope + metric + point attributes and bucket
// layout), the labels the translator gave each of its series and the
// head's reference to it, and appends a request whose every stream it knows
// by reference, without the translator. Anything else (a new stream, a
// shape the cache does not cover, a request the translator answered with a
// warning or an error) goes through the translator whole, which is then
// recorded to learn its streams. A request is either cached or translated,
// never split, so the samples reach the head in the translator's order.
//
// What the cache covers: gauges, cumulative sums and classic (non-NHCB)
// histograms, with their exemplars: the shapes whose values are read
// straight from the point (an exemplar's labels depend on the exemplar
// alone, so they are converted for every request, as the translator does).
// Exponential histograms, summaries and NHCB stay with the translator.
//
// Correctness rests on three facts of the head (tsdb/head_append*.go): an
// append with a reference the head no longer has (the series was garbage
// collected) falls back to a lookup by labels, so a stale reference costs a
// lookup; references are never reused within one head, so a reference never
// names another series; and a reopened TSDB is a new head whose references
// mean nothing, so the cache is emptied when the DB's generation changes.

const (
	// seriesCacheRotation is how long an unused stream stays cached: an
	// entry not used during one whole rotation is dropped at the next, so
	// the cache holds what was sent in the last 15 to 30 minutes.
	seriesCacheRotation = 15 * time.Minute
	// seriesCacheMaxEntries bounds the streams cached (beyond it new
	// streams are translated every time): at about 0.5 KiB an entry this
	// is at most about 0.5 GiB, for a million streams (31 million series
	// when they are probe histograms).
	seriesCacheMaxEntries = 1 << 20
	// probeMetricName names the one-point gauge the cache translates next
	// to a new resource to learn its target_info labels; never stored.
	probeMetricName = "bantay_series_cache_probe"
)

// seriesCache is shared by the store's concurrent appends.
type seriesCache struct {
	settings   otlptranslator.Settings
	converters *sync.Pool // of *otlptranslator.PrometheusConverter
	nextID     atomic.Uint64
	rotateAt   atomic.Int64 // unix nanoseconds of the next rotation

	mu        sync.RWMutex
	gen       uint64 // the DB generation the references belong to
	resources twoGen[*resourceEntry]
	points    twoGen[*pointEntry]
}

// resourceEntry is what a resource contributes: its id (the prefix of its
// points' keys) and its target_info series, if the translator writes one.
type resourceEntry struct {
	key        string
	id         uint64
	targetInfo labels.Labels // empty: the translator writes none
	targetHash uint64
	targetOpts storage.AppendV2Options
	targetRef  atomic.Uint64
}

// pointEntry is one stream: its series in the translator's order (for a
// histogram: _sum if the point has one, _count, the buckets, le="+Inf").
type pointEntry struct {
	key    string
	opts   storage.AppendV2Options
	labels []labels.Labels
	refs   []atomic.Uint64
}

func newSeriesCache(settings otlptranslator.Settings, converters *sync.Pool) *seriesCache {
	c := &seriesCache{settings: settings, converters: converters}
	c.resources.reset()
	c.points.reset()
	c.rotateAt.Store(time.Now().Add(seriesCacheRotation).UnixNano())
	return c
}

// cachedRequest is a request whose every stream is cached: its resources'
// and points' entries in request order.
type cachedRequest struct {
	resources []*resourceEntry
	points    []*pointEntry
}

// lookup returns the entries of every resource and point of md, or false
// if any is not cached (or not coverable), in which case md is translated.
func (c *seriesCache) lookup(md pmetric.Metrics, gen uint64) (*cachedRequest, bool) {
	c.maybeRotate()
	req := &cachedRequest{}
	var stale []string // found in the previous generation: promote them
	ok := func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if gen != c.gen {
			return false
		}
		key := make([]byte, 0, 2048)
		rms := md.ResourceMetrics()
		req.resources = make([]*resourceEntry, 0, rms.Len())
		for i := range rms.Len() {
			rm := rms.At(i)
			key = appendMap(key[:0], rm.Resource().Attributes())
			re, old, found := c.resources.get(key)
			if !found {
				return false
			}
			if old {
				stale = append(stale, re.key)
			}
			req.resources = append(req.resources, re)
			ok := walkStreams(rm, re.id, key[:0], c.settings.ConvertHistogramsToNHCB, func(_ pmetric.Metric, _ int, k []byte) bool {
				pe, old, found := c.points.get(k)
				if !found {
					return false
				}
				if old {
					stale = append(stale, pe.key)
				}
				req.points = append(req.points, pe)
				return true
			})
			if !ok {
				return false
			}
		}
		return true
	}()
	if len(stale) > 0 && ok {
		c.promote(gen, stale)
	}
	return req, ok
}

// walkStreams calls f with the key of every point of rm, in request order,
// and stops at the first false. It is false without calling f for anything
// the cache does not cover: a metric without points, a type other than
// gauge, sum and histogram (or a histogram the translator makes an NHCB
// of), an exemplar without a value, which the translator refuses.
func walkStreams(rm pmetric.ResourceMetrics, resourceID uint64, buf []byte, nhcb bool, f func(m pmetric.Metric, point int, key []byte) bool) bool {
	// One buffer for every key: each level appends to the prefix of the
	// one above it.
	buf = binary.LittleEndian.AppendUint64(buf[:0], resourceID)
	resource := len(buf)
	sms := rm.ScopeMetrics()
	for i := range sms.Len() {
		sm := sms.At(i)
		buf = appendScope(buf[:resource], sm)
		scope := len(buf)
		ms := sm.Metrics()
		for j := range ms.Len() {
			m := ms.At(j)
			buf = appendMetric(buf[:scope], m)
			metric := len(buf)
			switch m.Type() {
			case pmetric.MetricTypeGauge, pmetric.MetricTypeSum:
				dps := numberPoints(m)
				if dps.Len() == 0 {
					return false
				}
				for k := range dps.Len() {
					dp := dps.At(k)
					// The translator converts a sum's exemplars, and ignores a gauge's.
					if m.Type() == pmetric.MetricTypeSum && !exemplarsValued(dp.Exemplars()) {
						return false
					}
					buf = appendMap(buf[:metric], dp.Attributes())
					if !f(m, k, buf) {
						return false
					}
				}
			case pmetric.MetricTypeHistogram:
				dps := m.Histogram().DataPoints()
				if dps.Len() == 0 || nhcb {
					return false
				}
				for k := range dps.Len() {
					dp := dps.At(k)
					if !exemplarsValued(dp.Exemplars()) {
						return false
					}
					buf = appendHistogramLayout(appendMap(buf[:metric], dp.Attributes()), dp)
					if !f(m, k, buf) {
						return false
					}
				}
			default:
				return false
			}
		}
	}
	return true
}

// exemplarsValued reports whether every exemplar has a value: the
// translator fails a point with an exemplar of neither int nor double.
func exemplarsValued(exs pmetric.ExemplarSlice) bool {
	for i := range exs.Len() {
		if exs.At(i).ValueType() == pmetric.ExemplarValueTypeEmpty {
			return false
		}
	}
	return true
}

func numberPoints(m pmetric.Metric) pmetric.NumberDataPointSlice {
	if m.Type() == pmetric.MetricTypeGauge {
		return m.Gauge().DataPoints()
	}
	return m.Sum().DataPoints()
}

// appendCached appends md by reference, mirroring the translator's values
// and order (helper.go, number_data_points.go and addResourceTargetInfo in
// Prometheus's prometheusremotewrite): the labels and the shape were the
// translator's, only the values are read here. Like the translator, an
// append error ends the metric it occurred in and is joined into the result.
func (c *seriesCache) appendCached(ctx context.Context, app storage.AppenderV2, md pmetric.Metrics, req *cachedRequest) error {
	var errs error
	var seen map[targetInfoKey]struct{}
	ex := exemplarConverter{builder: labels.NewScratchBuilder(0)}
	next := 0
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		earliest, latest := pcommon.Timestamp(math.MaxUint64), pcommon.Timestamp(0)
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if err := ctx.Err(); err != nil {
					return errors.Join(errs, err)
				}
				m := ms.At(k)
				var err error
				switch m.Type() {
				case pmetric.MetricTypeGauge, pmetric.MetricTypeSum:
					dps := numberPoints(m)
					for x := range dps.Len() {
						dp := dps.At(x)
						earliest, latest = min(earliest, dp.Timestamp()), max(latest, dp.Timestamp())
						pe := req.points[next]
						next++
						if err == nil {
							var exs []exemplar.Exemplar
							if m.Type() == pmetric.MetricTypeSum {
								exs = ex.convert(dp.Exemplars())
								slices.SortFunc(exs, exemplar.Compare)
							}
							err = pe.append(app, 0, dp.StartTimestamp(), dp.Timestamp(), numberValue(dp), exs)
						}
					}
				case pmetric.MetricTypeHistogram:
					dps := m.Histogram().DataPoints()
					for x := range dps.Len() {
						dp := dps.At(x)
						earliest, latest = min(earliest, dp.Timestamp()), max(latest, dp.Timestamp())
						pe := req.points[next]
						next++
						if err == nil {
							err = pe.appendHistogram(app, dp, ex.convert(dp.Exemplars()))
						}
					}
				}
				errs = errors.Join(errs, err)
			}
		}
		re := req.resources[i]
		if earliest == math.MaxUint64 || re.targetInfo.IsEmpty() {
			continue
		}
		var err error
		targetInfoTimes(earliest, latest, c.settings.LookbackDelta, func(ms int64) {
			k := targetInfoKey{re.targetHash, ms}
			if _, dup := seen[k]; dup || err != nil {
				return
			}
			if seen == nil {
				seen = make(map[targetInfoKey]struct{})
			}
			seen[k] = struct{}{}
			ref := storage.SeriesRef(re.targetRef.Load())
			var r storage.SeriesRef
			r, err = app.Append(ref, re.targetInfo, 0, ms, 1, nil, nil, re.targetOpts)
			if r != 0 && r != ref {
				re.targetRef.Store(uint64(r))
			}
		})
		errs = errors.Join(errs, err)
	}
	return errs
}

// targetInfoKey deduplicates target_info samples within a request, as the
// translator does.
type targetInfoKey struct {
	labelsHash uint64
	ms         int64
}

// targetInfoTimes calls f with every time (ms) at which the translator
// writes target_info for a resource whose points span [earliest, latest]:
// every half lookback delta from the earliest, then the latest.
func targetInfoTimes(earliest, latest pcommon.Timestamp, lookback time.Duration, f func(ms int64)) {
	if lookback == 0 {
		lookback = 5 * time.Minute // the translator's default
	}
	last := latest.AsTime()
	for t := earliest.AsTime(); t.Before(last); t = t.Add(lookback / 2) {
		f(t.UnixMilli())
	}
	f(last.UnixMilli())
}

func numberValue(dp pmetric.NumberDataPoint) float64 {
	var v float64
	switch dp.ValueType() {
	case pmetric.NumberDataPointValueTypeInt:
		v = float64(dp.IntValue())
	case pmetric.NumberDataPointValueTypeDouble:
		v = dp.DoubleValue()
	}
	return staleIf(dp.Flags().NoRecordedValue(), v)
}

func staleIf(stale bool, v float64) float64 {
	if stale {
		return math.Float64frombits(value.StaleNaN)
	}
	return v
}

// append appends one sample with its exemplars to the entry's i-th series
// by reference and remembers the reference the head answers with (a new
// one when the series was garbage collected and created again).
func (e *pointEntry) append(app storage.AppenderV2, i int, st, t pcommon.Timestamp, v float64, exs []exemplar.Exemplar) error {
	ref := storage.SeriesRef(e.refs[i].Load())
	opts := e.opts
	opts.Exemplars = exs
	r, err := app.Append(ref, e.labels[i], int64(st)/1e6, int64(t)/1e6, v, nil, nil, opts)
	if r != 0 && r != ref {
		e.refs[i].Store(uint64(r))
	}
	return err
}

// appendHistogram writes a classic histogram point and its exemplars (in
// the point's order) as addHistogramDataPoints does: _sum (if set) and
// _count without exemplars, the cumulative buckets, le="+Inf" from the
// count. Each bucket takes the exemplars from the next one on up to the
// first above its bound (the translator assumes them sorted by value and
// does not sort them, so neither does this), le="+Inf" takes the rest;
// each bucket's are then sorted by exemplar.Compare. A bucket's exemplars
// are sorted in place: the ranges are disjoint, and the head copies them.
func (e *pointEntry) appendHistogram(app storage.AppenderV2, dp pmetric.HistogramDataPoint, exs []exemplar.Exemplar) error {
	stale := dp.Flags().NoRecordedValue()
	st, t := dp.StartTimestamp(), dp.Timestamp()
	i := 0
	if dp.HasSum() {
		if err := e.append(app, i, st, t, staleIf(stale, dp.Sum()), nil); err != nil {
			return err
		}
		i++
	}
	count := staleIf(stale, float64(dp.Count()))
	if err := e.append(app, i, st, t, count, nil); err != nil {
		return err
	}
	i++
	bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
	var cumulative uint64
	next := 0
	for b := 0; b < bounds.Len() && b < counts.Len(); b++ {
		cumulative += counts.At(b)
		first := next
		// Negated as the translator's "ex.Value > bound: stop" is, so
		// that a NaN exemplar stays in the first bucket as there.
		for next < len(exs) && !(exs[next].Value > bounds.At(b)) {
			next++
		}
		bucket := exs[first:next]
		slices.SortFunc(bucket, exemplar.Compare)
		if err := e.append(app, i, st, t, staleIf(stale, float64(cumulative)), bucket); err != nil {
			return err
		}
		i++
	}
	rest := exs[next:]
	slices.SortFunc(rest, exemplar.Compare)
	return e.append(app, i, st, t, count, rest)
}

// exemplarConverter converts exemplars as getPromExemplars in Prometheus's
// prometheusremotewrite (helper.go) does, into one buffer per request.
type exemplarConverter struct {
	builder labels.ScratchBuilder
	buf     []exemplar.Exemplar
}

const (
	// maxExemplarRunes and the trace keys are the translator's (helper.go).
	maxExemplarRunes = 128
	traceIDKey       = "trace_id"
	spanIDKey        = "span_id"
)

// convert returns exs converted, in their order, or nil if there are none.
// The result lives until the next convert. Labels: trace_id and span_id
// (hex) when set, then the filtered attributes unless they would take the
// labels beyond maxExemplarRunes; an attribute named like a trace label
// that is set gives way to it.
func (c *exemplarConverter) convert(exs pmetric.ExemplarSlice) []exemplar.Exemplar {
	if exs.Len() == 0 {
		return nil
	}
	out := c.buf[:0]
	for i := range exs.Len() {
		ex := exs.At(i)
		ts := timestamp.FromTime(ex.Timestamp().AsTime())
		e := exemplar.Exemplar{Ts: ts, HasTs: ts != 0}
		switch ex.ValueType() {
		case pmetric.ExemplarValueTypeInt:
			e.Value = float64(ex.IntValue())
		case pmetric.ExemplarValueTypeDouble:
			e.Value = ex.DoubleValue()
		}
		c.builder.Reset()
		runes := 0
		traceID, spanID := ex.TraceID(), ex.SpanID()
		hasTrace, hasSpan := !traceID.IsEmpty(), !spanID.IsEmpty()
		if hasTrace {
			v := hex.EncodeToString(traceID[:])
			runes += utf8.RuneCountInString(traceIDKey) + utf8.RuneCountInString(v)
			c.builder.Add(traceIDKey, v)
		}
		if hasSpan {
			v := hex.EncodeToString(spanID[:])
			runes += utf8.RuneCountInString(spanIDKey) + utf8.RuneCountInString(v)
			c.builder.Add(spanIDKey, v)
		}
		overridden := func(k string) bool { return hasTrace && k == traceIDKey || hasSpan && k == spanIDKey }
		attrs := ex.FilteredAttributes()
		for k, v := range attrs.All() {
			if !overridden(k) {
				runes += utf8.RuneCountInString(k) + utf8.RuneCountInString(v.AsString())
			}
		}
		if runes <= maxExemplarRunes {
			for k, v := range attrs.All() {
				if !overridden(k) {
					c.builder.Add(k, v.AsString())
				}
			}
		}
		c.builder.Sort()
		e.Labels = c.builder.Labels()
		out = append(out, e)
	}
	c.buf = out
	return out
}

// histogramSeries is how many series the translator writes for a classic
// histogram point (no +Inf bound: that one it answers with a warning).
func histogramSeries(dp pmetric.HistogramDataPoint) int {
	n := min(dp.ExplicitBounds().Len(), dp.BucketCounts().Len()) + 2 // the buckets, _count, le="+Inf"
	if dp.HasSum() {
		n++
	}
	return n
}

// record is one append the translator made.
type record struct {
	ls   labels.Labels
	ref  storage.SeriesRef
	opts storage.AppendV2Options
}

// recorder records the translator's appends, passing them on to the
// embedded appender when it is set.
type recorder struct {
	storage.AppenderV2
	recs []record
}

// recorders keeps the records' memory from one translated request to the
// next (a request of 100 probe histograms records 3,100 appends).
var recorders = sync.Pool{New: func() any { return new(recorder) }}

func getRecorder(next storage.AppenderV2) *recorder {
	r := recorders.Get().(*recorder)
	r.AppenderV2 = next
	return r
}

// putRecorder returns r to the pool, unless it grew beyond what a large
// request needs.
func putRecorder(r *recorder) {
	if cap(r.recs) > 1<<16 {
		return
	}
	clear(r.recs) // the labels are the head's; do not keep them alive
	*r = recorder{recs: r.recs[:0]}
	recorders.Put(r)
}

func (r *recorder) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	var got storage.SeriesRef
	var err error
	if r.AppenderV2 != nil {
		got, err = r.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	}
	r.recs = append(r.recs, record{ls: ls, ref: got, opts: opts})
	return got, err
}

// learn caches the streams of md from the translator's appends for it,
// recs, after they were committed cleanly (no warning, no error). It checks
// every series it assigns against the translator's own names and order and
// learns nothing from a request where they disagree.
func (c *seriesCache) learn(ctx context.Context, md pmetric.Metrics, recs []record, gen uint64) {
	type learned struct {
		re     *resourceEntry
		points []*pointEntry
	}
	c.mu.RLock()
	useless := gen < c.gen || gen == c.gen && c.points.len() >= seriesCacheMaxEntries
	c.mu.RUnlock()
	if useless { // nothing learnt could be kept
		return
	}
	rms := md.ResourceMetrics()
	out := make([]learned, rms.Len())
	key := make([]byte, 0, 2048)
	var probed map[string]*resourceEntry // a resource repeated in md is probed once
	for i := range rms.Len() {
		key = appendMap(key[:0], rms.At(i).Resource().Attributes())
		c.mu.RLock()
		re, _, found := c.resources.get(key)
		found = found && gen == c.gen // an entry of another TSDB has a void target_info reference
		c.mu.RUnlock()
		if !found {
			if re = probed[string(key)]; re == nil {
				var ok bool
				if re, ok = c.probeResource(ctx, rms.At(i).Resource(), string(key)); !ok {
					return
				}
				if probed == nil {
					probed = make(map[string]*resourceEntry)
				}
				probed[re.key] = re
			}
		}
		out[i] = learned{re: re}
	}

	var seen map[targetInfoKey]struct{}
	next := 0
	take := func(n int) []record {
		if next+n > len(recs) {
			return nil
		}
		r := recs[next : next+n]
		next += n
		return r
	}
	for i := range rms.Len() {
		rm := rms.At(i)
		l := &out[i]
		earliest, latest := pcommon.Timestamp(math.MaxUint64), pcommon.Timestamp(0)
		ok := walkStreams(rm, l.re.id, key[:0], c.settings.ConvertHistogramsToNHCB, func(m pmetric.Metric, x int, k []byte) bool {
			var rs []record
			var ts pcommon.Timestamp
			if m.Type() == pmetric.MetricTypeHistogram {
				dp := m.Histogram().DataPoints().At(x)
				ts = dp.Timestamp()
				rs = take(histogramSeries(dp))
				if rs == nil || !histogramNames(rs, dp.HasSum()) {
					return false
				}
			} else {
				dp := numberPoints(m).At(x)
				ts = dp.Timestamp()
				rs = take(1)
				if rs == nil || rs[0].ls.Get(model.MetricNameLabel) != rs[0].opts.MetricFamilyName {
					return false
				}
			}
			earliest, latest = min(earliest, ts), max(latest, ts)
			pe := &pointEntry{key: string(k), opts: rs[0].opts, labels: make([]labels.Labels, len(rs)), refs: make([]atomic.Uint64, len(rs))}
			pe.opts.Exemplars = nil
			for j, r := range rs {
				pe.labels[j] = r.ls
				pe.refs[j].Store(uint64(r.ref))
			}
			l.points = append(l.points, pe)
			return true
		})
		if !ok {
			return
		}
		if earliest == math.MaxUint64 || l.re.targetInfo.IsEmpty() {
			continue
		}
		targetInfoTimes(earliest, latest, c.settings.LookbackDelta, func(ms int64) {
			k := targetInfoKey{l.re.targetHash, ms}
			if _, dup := seen[k]; dup || !ok {
				return
			}
			if seen == nil {
				seen = make(map[targetInfoKey]struct{})
			}
			seen[k] = struct{}{}
			rs := take(1)
			ok = rs != nil && labels.Equal(rs[0].ls, l.re.targetInfo)
		})
		if !ok {
			return
		}
	}
	if next != len(recs) {
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case gen < c.gen:
		return
	case gen > c.gen: // the TSDB was reopened: every reference is void
		c.gen = gen
		c.resources.reset()
		c.points.reset()
	}
	for _, l := range out {
		if cur, found := c.resources.getString(l.re.key); found {
			if cur != l.re { // learnt meanwhile by another request, under another id
				continue
			}
		} else if !c.resources.put(l.re.key, l.re) {
			continue
		}
		for _, pe := range l.points {
			c.points.put(pe.key, pe)
		}
	}
}

// histogramNames reports whether rs are, by name, the series the
// translator writes for one classic histogram point of one family.
func histogramNames(rs []record, hasSum bool) bool {
	family := rs[0].opts.MetricFamilyName
	for i, r := range rs {
		suffix := "_bucket"
		switch {
		case hasSum && i == 0:
			suffix = "_sum"
		case hasSum && i == 1, !hasSum && i == 0:
			suffix = "_count"
		}
		name, ok := strings.CutPrefix(r.ls.Get(model.MetricNameLabel), family)
		if r.opts.MetricFamilyName != family || !ok || name != suffix {
			return false
		}
	}
	return rs[len(rs)-1].ls.Get("le") == "+Inf"
}

// probeResource learns whether and under which labels the translator
// writes target_info for a resource, by translating the resource with one
// gauge point into a recorder that stores nothing. A resource the
// translator answers with a warning or an error is not cached.
func (c *seriesCache) probeResource(ctx context.Context, res pcommon.Resource, key string) (*resourceEntry, bool) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res.CopyTo(rm.Resource())
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(probeMetricName)
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetTimestamp(pcommon.Timestamp(time.Millisecond))
	rec := &recorder{}
	conv := c.converters.Get().(*otlptranslator.PrometheusConverter)
	conv.Reset(rec)
	annots, err := conv.FromMetrics(ctx, md, c.settings)
	conv.Reset(nil)
	c.converters.Put(conv)
	if err != nil || len(annots) > 0 {
		return nil, false
	}
	re := &resourceEntry{key: key, id: c.nextID.Add(1)}
	switch len(rec.recs) {
	case 1: // the gauge alone: no target_info
	case 2:
		re.targetInfo, re.targetOpts = rec.recs[1].ls, rec.recs[1].opts
		re.targetHash = re.targetInfo.Hash()
	default:
		return nil, false
	}
	return re, true
}

// promote moves entries found in the previous generation into the current.
func (c *seriesCache) promote(gen uint64, keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	for _, k := range keys {
		c.resources.promote(k)
		c.points.promote(k)
	}
}

// maybeRotate drops what was not used during the last whole rotation.
func (c *seriesCache) maybeRotate() {
	now := time.Now()
	at := c.rotateAt.Load()
	if now.UnixNano() < at || !c.rotateAt.CompareAndSwap(at, now.Add(seriesCacheRotation).UnixNano()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resources.rotate()
	c.points.rotate()
}

// entries is the number of streams cached.
func (c *seriesCache) entries() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.points.len()
}

// twoGen is a map whose entries live while they are used: rotate makes the
// current map the previous one and starts an empty current one; get finds
// entries in both, and promote moves one back into the current map.
type twoGen[V any] struct {
	cur, prev map[string]V
}

func (g *twoGen[V]) reset() {
	g.cur, g.prev = make(map[string]V), make(map[string]V)
}

func (g *twoGen[V]) get(k []byte) (v V, old, found bool) {
	if v, found = g.cur[string(k)]; found {
		return v, false, true
	}
	v, found = g.prev[string(k)]
	return v, found, found
}

func (g *twoGen[V]) getString(k string) (v V, found bool) {
	if v, found = g.cur[k]; !found {
		v, found = g.prev[k]
	}
	return v, found
}

// put adds an entry unless the map is full.
func (g *twoGen[V]) put(k string, v V) bool {
	if _, found := g.cur[k]; !found && g.len() >= seriesCacheMaxEntries {
		return false
	}
	g.cur[k] = v
	delete(g.prev, k)
	return true
}

func (g *twoGen[V]) promote(k string) {
	if v, found := g.prev[k]; found {
		g.cur[k] = v
		delete(g.prev, k)
	}
}

func (g *twoGen[V]) rotate() {
	g.prev, g.cur = g.cur, make(map[string]V, len(g.cur))
}

func (g *twoGen[V]) len() int { return len(g.cur) + len(g.prev) }

// The keys: every string length-prefixed, so that no two different
// identities encode alike. Attribute values are keyed by AsString, which is
// what the translator makes label values of.

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMap(b []byte, m pcommon.Map) []byte {
	b = binary.AppendUvarint(b, uint64(m.Len()))
	for k, v := range m.All() {
		b = appendString(b, k)
		if v.Type() == pcommon.ValueTypeStr {
			b = appendString(b, v.Str())
		} else {
			b = appendString(b, v.AsString())
		}
	}
	return b
}

func appendScope(b []byte, sm pmetric.ScopeMetrics) []byte {
	s := sm.Scope()
	b = appendString(b, s.Name())
	b = appendString(b, s.Version())
	b = appendString(b, sm.SchemaUrl())
	return appendMap(b, s.Attributes())
}

// appendMetric keys what the translator derives names, metadata and
// validity from.
func appendMetric(b []byte, m pmetric.Metric) []byte {
	b = appendString(b, m.Name())
	b = appendString(b, m.Unit())
	b = appendString(b, m.Description())
	b = append(b, byte(m.Type()))
	switch m.Type() {
	case pmetric.MetricTypeSum:
		b = append(b, byte(m.Sum().AggregationTemporality()))
		if m.Sum().IsMonotonic() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case pmetric.MetricTypeHistogram:
		b = append(b, byte(m.Histogram().AggregationTemporality()))
	}
	return b
}

// appendHistogramLayout keys what decides a histogram point's series:
// whether it has a sum, its bounds (the le values) and its bucket count.
func appendHistogramLayout(b []byte, dp pmetric.HistogramDataPoint) []byte {
	if dp.HasSum() {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(dp.BucketCounts().Len()))
	bounds := dp.ExplicitBounds()
	b = binary.AppendUvarint(b, uint64(bounds.Len()))
	for i := range bounds.Len() {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(bounds.At(i)))
	}
	return b
}
