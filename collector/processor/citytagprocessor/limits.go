package citytagprocessor

import (
	"context"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
)

// Per-probe limits, modelled on Prometheus's scrape limits (sample_limit,
// label_limit, label_name_length_limit, label_value_length_limit) and
// Mimir's per-tenant series limit. A registered, authenticated probe, or an
// OTel SDK misconfigured with a probe's id, must not be able to grow the
// store's head without bound: a per-request unique attribute would
// otherwise start a new series with every request until memory_limiter
// refuses everyone's data or the process runs out of memory.
//
// A series is what the store makes of a point with Prometheus's default
// OTLP translation (internal/store uses config.DefaultOTLPConfig): its
// metric name (from the OTel name, unit and type), job (service.namespace,
// service.name), instance (the probe id) and the point's attributes after
// tagging. Resource attributes other than those, and the scope, are not
// labels of a point's series; they make the resource's target_info series,
// which is counted too. A point costs what the store makes of it: a
// histogram with n bounds is n+1 buckets, _sum and _count (31 series for
// the probes' 28 bounds), a summary its quantiles, _sum and _count, any
// other point (including an exponential histogram, a native histogram in
// the store) one.
//
// Each probe has a map of series key (a seeded hash) → last seen and cost,
// behind its own mutex. A series already there always goes on; a point that
// would add one beyond max_series_per_probe is rejected (series_limit). A
// series unseen for series_idle is forgotten by a periodic sweep, which
// frees its budget, so the map never holds more entries than the limit. Two
// different series whose keys collide count as one; with 64-bit keys from
// a per-process random seed that admits, in practice, nothing.

// Rejection reasons of the limits.
const (
	reasonSeriesLimit      = "series_limit"
	reasonAttributeLimit   = "attribute_limit"
	reasonAttrNameTooLong  = "attribute_name_too_long"
	reasonAttrValueTooLong = "attribute_value_too_long"
	reasonInvalidUTF8      = "invalid_utf8"
)

// Resource attributes that are job and instance in the store.
const (
	attrServiceName      = "service.name"
	attrServiceNamespace = "service.namespace"
)

// limiter enforces the limits for one citytag processor.
type limiter struct {
	maxSeries   int
	idle        time.Duration
	maxAttrs    int
	maxNameLen  int
	maxValueLen int

	seed   maphash.Seed
	probes map[string]*probeSeries // registered probes; nil without a series limit

	elapsed func() time.Duration // monotonic time since the limiter was made; replaced in tests

	stop    chan struct{}
	stopped sync.WaitGroup
}

// probeSeries is the series one probe has active.
type probeSeries struct {
	mu     sync.Mutex
	series map[uint64]seriesState
	active int // sum of the series' costs
}

type seriesState struct {
	seen int64  // nanoseconds since the limiter was made (elapsed)
	cost uint32 // store series of the point, the largest seen
}

func newLimiter(cfg LimitsConfig, probes map[string]registeredProbe) *limiter {
	l := &limiter{
		maxSeries:   cfg.MaxSeriesPerProbe,
		idle:        cfg.SeriesIdle,
		maxAttrs:    cfg.MaxPointAttributes,
		maxNameLen:  cfg.MaxAttributeNameLength,
		maxValueLen: cfg.MaxAttributeValueLength,
		seed:        maphash.MakeSeed(),
	}
	start := time.Now()
	l.elapsed = func() time.Duration { return time.Since(start) }
	if l.maxSeries > 0 {
		l.probes = make(map[string]*probeSeries, len(probes))
		for id := range probes {
			l.probes[id] = &probeSeries{series: make(map[uint64]seriesState)}
		}
	}
	return l
}

// sweepInterval is how often idle series are forgotten: a tenth of
// series_idle, between a second and a minute, so a series stops counting
// at most that long after series_idle.
func (l *limiter) sweepInterval() time.Duration {
	return min(max(l.idle/10, time.Second), time.Minute)
}

// startSweeping starts the sweeper and the active-series gauge.
func (l *limiter) startSweeping(tel *metadata.TelemetryBuilder) error {
	if l.probes == nil || l.stop != nil {
		return nil
	}
	// The builder's Shutdown (the tagger's) unregisters the callback.
	err := tel.RegisterCitytagActiveSeriesCallback(func(_ context.Context, o metric.Int64Observer) error {
		for id, ps := range l.probes {
			ps.mu.Lock()
			n := ps.active
			ps.mu.Unlock()
			o.Observe(int64(n), metric.WithAttributes(attribute.String(labelProbe, id)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.stop = make(chan struct{})
	l.stopped.Add(1)
	go func() {
		defer l.stopped.Done()
		tick := time.NewTicker(l.sweepInterval())
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.sweep()
			}
		}
	}()
	return nil
}

func (l *limiter) shutdown() {
	if l.stop == nil {
		return
	}
	close(l.stop)
	l.stopped.Wait()
	l.stop = nil
}

// sweep forgets the series no point has come for in series_idle.
func (l *limiter) sweep() {
	cutoff := int64(l.elapsed() - l.idle)
	for _, ps := range l.probes {
		ps.mu.Lock()
		for k, st := range ps.series {
			if st.seen < cutoff {
				ps.active -= int(st.cost)
				delete(ps.series, k)
			}
		}
		ps.mu.Unlock()
	}
}

// seriesScope is what the limits need of one resource (one probe uplink)
// of one request.
type seriesScope struct {
	l         *limiter
	ps        *probeSeries // nil without a series limit
	namespace string       // service.namespace and service.name: the store's job label
	service   string
	now       int64
}

// forResource checks the resource's own attributes (they are the labels of
// its target_info series) and admits that series. The resource's points
// are judged one by one afterwards.
func (l *limiter) forResource(probe string, res pcommon.Map, now int64) (seriesScope, string, string) {
	sc := seriesScope{l: l, now: now}
	if l.probes != nil {
		sc.ps = l.probes[probe]
	}
	sc.namespace, sc.service = strAttr(res, attrServiceNamespace), strAttr(res, attrServiceName)
	sum := maphash.String(l.seed, "target_info")
	labels := false // target_info exists only with attributes beyond job and instance
	for k, v := range res.All() {
		s := attrString(v)
		if reason, detail := l.checkAttribute("resource attribute", k, s); reason != "" {
			return sc, reason, detail
		}
		sum += l.pairHash(k, s)
		labels = labels || (k != attrServiceName && k != attrServiceNamespace && k != attrProbeID)
	}
	if sc.ps == nil || !labels {
		return sc, "", ""
	}
	if ok, active := sc.ps.admit(sum, 1, now, l.maxSeries); !ok {
		return sc, reasonSeriesLimit, "resource attributes would start a new target_info series beyond max_series_per_probe: probe has " +
			strconv.Itoa(active) + " of " + strconv.Itoa(l.maxSeries) + " active"
	}
	return sc, "", ""
}

// metricKey is the part of a series key that comes from the metric (its
// name in the store follows from the OTel name, unit and type) and the
// resource: its job and its uplink (carrier and network_type, which
// citytag sets on every point). It also checks the metric name's length: the name is a
// label value (__name__) in the store.
func (sc *seriesScope) metricKey(m pmetric.Metric, pl placement) (uint64, string, string) {
	l := sc.l
	if !utf8.ValidString(m.Name()) {
		return 0, reasonInvalidUTF8, "metric name " + quote(m.Name()) + " is not valid UTF-8"
	}
	if l.maxValueLen > 0 && len(m.Name()) > l.maxValueLen {
		return 0, reasonAttrValueTooLong, "metric name " + quote(m.Name()) + " is " + strconv.Itoa(len(m.Name())) +
			" bytes long; max_attribute_value_length is " + strconv.Itoa(l.maxValueLen)
	}
	if sc.ps == nil {
		return 0, "", ""
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	writeField(&h, sc.namespace)
	writeField(&h, sc.service)
	writeField(&h, pl.carrier)
	writeField(&h, pl.networkType)
	writeField(&h, m.Name())
	writeField(&h, m.Unit())
	kind := byte(m.Type())
	if m.Type() == pmetric.MetricTypeSum && m.Sum().IsMonotonic() {
		kind |= 0x80 // a counter gets _total; a non-monotonic sum is a gauge
	}
	h.WriteByte(kind)
	return h.Sum64(), "", ""
}

// point checks one tagged point's attributes and admits its series. cost
// is how many series the point makes in the store.
func (sc *seriesScope) point(mkey uint64, name string, attrs pcommon.Map, cost int) (string, string) {
	l := sc.l
	if n := attrs.Len(); l.maxAttrs > 0 && n > l.maxAttrs {
		return reasonAttributeLimit, "data point has " + strconv.Itoa(n) + " attributes after tagging (citytag's 9 included); max_point_attributes is " +
			strconv.Itoa(l.maxAttrs)
	}
	sum := mkey
	for k, v := range attrs.All() {
		switch k {
		case labelSrcCity, labelRegion, labelIslandGroup, labelDstRegion, labelDstIslandGroup, labelCarrier, labelNetworkType, labelProbe:
			// Set by citytag from the registry and the gazetteer (validated
			// against the limits), and functions of the probe, its uplink
			// (in mkey) or dst_city: they add nothing to the series' identity.
			continue
		}
		s := attrString(v)
		if k != attrDstCity { // dst_city too is citytag's, from the gazetteer
			if reason, detail := l.checkAttribute("attribute", k, s); reason != "" {
				return reason, detail
			}
		}
		if sc.ps != nil {
			sum += l.pairHash(k, s)
		}
	}
	if sc.ps == nil {
		return "", ""
	}
	if ok, active := sc.ps.admit(sum, cost, sc.now, l.maxSeries); !ok {
		return reasonSeriesLimit, "new series of metric " + quote(name) + " (" + strconv.Itoa(cost) +
			" in the store) would exceed max_series_per_probe: probe has " + strconv.Itoa(active) + " of " +
			strconv.Itoa(l.maxSeries) + " active"
	}
	return "", ""
}

// checkAttribute refuses a name or value the store would keep as a label
// that is not valid UTF-8 (Prometheus label values must be, and the API's
// JSON could not carry it), and one beyond the length limits.
func (l *limiter) checkAttribute(what, k, v string) (string, string) {
	if !utf8.ValidString(k) {
		return reasonInvalidUTF8, what + " name " + quote(k) + " is not valid UTF-8"
	}
	if !utf8.ValidString(v) {
		return reasonInvalidUTF8, what + " " + quote(k) + " value " + quote(v) + " is not valid UTF-8"
	}
	if l.maxNameLen > 0 && len(k) > l.maxNameLen {
		return reasonAttrNameTooLong, what + " name " + quote(k) + " is " + strconv.Itoa(len(k)) +
			" bytes long; max_attribute_name_length is " + strconv.Itoa(l.maxNameLen)
	}
	if l.maxValueLen > 0 && len(v) > l.maxValueLen {
		return reasonAttrValueTooLong, what + " " + quote(k) + " is " + strconv.Itoa(len(v)) +
			" bytes long; max_attribute_value_length is " + strconv.Itoa(l.maxValueLen)
	}
	return "", ""
}

// admit records a point of series key, which makes cost series in the
// store: a known series is refreshed (its cost may grow, say a histogram
// given more bounds, if the budget allows); a new one is added if it fits.
// It returns false, and the probe's active series, when it does not.
func (ps *probeSeries) admit(key uint64, cost int, now int64, maxSeries int) (bool, int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st, known := ps.series[key]
	grow := cost - int(st.cost)
	if grow > 0 && ps.active+grow > maxSeries {
		return false, ps.active
	}
	if known && grow <= 0 && st.seen == now {
		return true, ps.active // another point of it in this request
	}
	if grow > 0 {
		ps.active += grow
		st.cost = uint32(cost)
	}
	st.seen = now
	ps.series[key] = st
	return true, ps.active
}

// pairHash hashes one attribute. A series' key is the sum of its
// attributes' hashes, so the order attributes arrive in does not matter.
// The name's and the value's hashes are combined non-linearly, so that
// swapping values between two names makes another key.
func (l *limiter) pairHash(k, v string) uint64 {
	return mix64(maphash.String(l.seed, k)*0x9e3779b97f4a7c15 ^ maphash.String(l.seed, v))
}

// mix64 is SplitMix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func writeField(h *maphash.Hash, s string) {
	maphash.WriteComparable(h, len(s))
	h.WriteString(s)
}

// attrString is an attribute's value as the store's label value.
func attrString(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return v.AsString() // allocates: not what probes send
}

// histogramCost and summaryCost are how many series a point makes in the
// store: a bucket per bound and +Inf, _sum and _count; a series per
// quantile, _sum and _count.
func histogramCost(dp pmetric.HistogramDataPoint) int { return dp.ExplicitBounds().Len() + 3 }

func summaryCost(dp pmetric.SummaryDataPoint) int { return dp.QuantileValues().Len() + 2 }
