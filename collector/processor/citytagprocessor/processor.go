package citytagprocessor

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension"
	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/logthrottle"
	"github.com/bantay-noc/bantay/internal/meshreg"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Attribute names: what probes send and what citytag sets, from the metric model.
const (
	attrProbeID         = metricmodel.ResourceProbeID
	attrDeclaredCity    = metricmodel.ResourceDeclaredCity
	attrUplinkCarrier   = metricmodel.ResourceCarrier
	attrUplinkNetwork   = metricmodel.ResourceNetworkType
	attrDstCity         = metricmodel.AttrDstCity
	attrTarget          = metricmodel.AttrTarget
	labelSrcCity        = metricmodel.LabelSrcCity
	labelRegion         = metricmodel.LabelRegion
	labelIslandGroup    = metricmodel.LabelIslandGroup
	labelDstRegion      = metricmodel.LabelDstRegion
	labelDstIslandGroup = metricmodel.LabelDstIslandGroup
	labelCarrier        = metricmodel.LabelCarrier
	labelNetworkType    = metricmodel.LabelNetworkType
	labelProbe          = metricmodel.LabelProbe
)

// Rejection reasons, the values of the `reason` attribute of the rejected-points counter.
const (
	reasonMissingProbeID    = "missing_probe_id"
	reasonUnknownProbe      = "unknown_probe"
	reasonUnknownCarrier    = "unknown_carrier"
	reasonUnknownNetwork    = "unknown_network_type"
	reasonUnregisteredLink  = "unregistered_uplink"
	reasonMissingDstCity    = "missing_dst_city"
	reasonUnknownDstCity    = "unknown_dst_city"
	reasonInvalidValue      = "invalid_value"
	reasonDeclaredCityClash = "declared_city_mismatch"
	reasonUnauthenticated   = "unauthenticated"
	reasonIdentityMismatch  = "probe_identity_mismatch"
)

type uplinkKey struct{ carrier, networkType string }

type registeredProbe struct {
	id      string
	city    gazetteer.City
	uplinks map[uplinkKey]struct{}
	// mesh is what the mesh registry says of the probe (nil: no reflector).
	mesh *meshreg.Site
}

// cityTagger places every data point on the map, or rejects it with a reason.
type cityTagger struct {
	logger      *zap.Logger
	gaz         *gazetteer.Gazetteer
	probes      map[string]registeredProbe
	maxLatency  float64
	requireAuth bool
	maxAhead    time.Duration
	maxAge      time.Duration
	now         func() time.Time // the collector's clock; replaced in tests

	rejected     metric.Int64Counter
	cityMismatch metric.Int64Counter
	clockSkew    metric.Float64Gauge
	latePoints   metric.Int64Counter
	newestMu     sync.Mutex
	newest       map[uplinkOf]int64                  // Unix ns of the newest point per probe uplink
	probeAttr    map[string]metric.MeasurementOption // {probe=id} of each registered probe, made once
	logs         *logthrottle.Logger
	bus          *events.Bus // nil without the bantay extension
	limits       *limiter
	telemetry    *metadata.TelemetryBuilder
}

func newCityTagger(set processor.Settings, cfg *Config) (*cityTagger, error) {
	gaz, probes, err := cfg.build()
	if err != nil {
		return nil, err
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	probeAttr := make(map[string]metric.MeasurementOption, len(probes))
	for id := range probes {
		probeAttr[id] = metric.WithAttributes(attribute.String(labelProbe, id))
	}
	return &cityTagger{
		logger:       set.Logger,
		probeAttr:    probeAttr,
		maxAhead:     cfg.Timestamps.MaxAhead,
		maxAge:       cfg.Timestamps.MaxAge,
		now:          time.Now,
		clockSkew:    tel.CitytagClockSkewSeconds,
		latePoints:   tel.CitytagLatePoints,
		newest:       map[uplinkOf]int64{},
		gaz:          gaz,
		probes:       probes,
		maxLatency:   cfg.MaxLatencyMs,
		requireAuth:  cfg.RequireAuthenticatedProbe,
		rejected:     tel.CitytagRejectedPoints,
		cityMismatch: tel.CitytagDeclaredCityMismatches,
		logs:         logthrottle.New(set.Logger, cfg.LogInterval),
		limits:       newLimiter(cfg.Limits, probes),
		telemetry:    tel,
	}, nil
}

// placement is the canonical location of one probe uplink.
type placement struct {
	probe       string
	city        gazetteer.City
	carrier     string
	networkType string
}

// processMetrics tags what it can place and drops the rest, counting each
// dropped point by reason. A bad resource or point never affects the others.
// The rejections are recorded in the call's context for refusingProcessor,
// which tells the sender once the rest has gone on (refusal.go).
func (t *cityTagger) processMetrics(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	rej, ctx := callOf(ctx)
	authenticated, hasCredential := authenticatedProbe(ctx)
	now := int64(t.limits.elapsed())
	win := t.window()
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		res := rm.Resource().Attributes()
		pl, reason, detail := t.place(res)
		if reason == "" {
			reason, detail = t.checkIdentity(pl.probe, authenticated, hasCredential)
		}
		var sc seriesScope
		if reason == "" {
			res.Remove(attrDeclaredCity)
			res.Remove(attrUplinkCarrier)
			res.Remove(attrUplinkNetwork)
			sc, reason, detail = t.limits.forResource(pl.probe, res, now)
		}
		if reason != "" {
			t.reject(ctx, rej, reason, pl, "", detail, countPoints(rm))
			return true
		}
		dst := dstCache{gaz: t.gaz}
		t.startLate(pl, &win)
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				return t.tagMetric(ctx, rej, pl, &dst, &sc, &win, m) == 0
			})
			return sm.Metrics().Len() == 0
		})
		t.reportSkew(ctx, pl, &win)
		t.reportLate(ctx, pl, &win)
		return rm.ScopeMetrics().Len() == 0
	})
	if rej != nil && rej.points > 0 {
		rej.forwarded = md.DataPointCount()
	}
	if md.ResourceMetrics().Len() == 0 {
		return md, processorhelper.ErrSkipProcessingData
	}
	return md, nil
}

// authenticatedProbe returns the probe id the request's credential belongs to.
func authenticatedProbe(ctx context.Context) (string, bool) {
	auth := client.FromContext(ctx).Auth
	if auth == nil {
		return "", false
	}
	id, ok := auth.GetAttribute(probeauthextension.ProbeIDAttribute).(string)
	return id, ok
}

// checkIdentity refuses a probe reporting under another probe's id, and
// unauthenticated data when credentials are required.
func (t *cityTagger) checkIdentity(probe, authenticated string, hasCredential bool) (string, string) {
	switch {
	case hasCredential && authenticated != probe:
		return reasonIdentityMismatch, "credential belongs to probe " + quote(authenticated) + ", data claims " + quote(probe)
	case !hasCredential && t.requireAuth:
		return reasonUnauthenticated, "no probe credential (require_authenticated_probe is set)"
	}
	return "", ""
}

// place resolves a resource (one probe uplink) against the registry. The
// uplink's carrier and network type are resolved first, so that a
// rejection for any reason names them when the gazetteer knows them.
func (t *cityTagger) place(res pcommon.Map) (placement, string, string) {
	var pl placement
	rawCarrier := strAttr(res, attrUplinkCarrier)
	if utf8.ValidString(rawCarrier) {
		pl.carrier, _ = t.gaz.Carrier(rawCarrier)
	}
	rawNetwork := strAttr(res, attrUplinkNetwork)
	if utf8.ValidString(rawNetwork) {
		pl.networkType, _ = t.gaz.NetworkType(rawNetwork)
	}
	id, ok := res.Get(attrProbeID)
	if !ok || id.Str() == "" {
		return pl, reasonMissingProbeID, "resource has no service.instance.id"
	}
	probe, ok := t.probes[id.Str()]
	if !ok {
		// From here on the id is only reported: escaped and bounded.
		pl.probe = probeName(id.Str())
		return pl, reasonUnknownProbe, "probe is not in the citytag registry"
	}
	pl.probe = probe.id
	pl.city = probe.city
	if pl.carrier == "" {
		reason, detail := notInGazetteer(reasonUnknownCarrier, "carrier", rawCarrier)
		return pl, reason, detail
	}
	if pl.networkType == "" {
		reason, detail := notInGazetteer(reasonUnknownNetwork, "network type", rawNetwork)
		return pl, reason, detail
	}
	if _, ok := probe.uplinks[uplinkKey{pl.carrier, pl.networkType}]; !ok {
		return pl, reasonUnregisteredLink, "uplink " + pl.carrier + "/" + pl.networkType + " is not registered for this probe"
	}
	if declared := strAttr(res, attrDeclaredCity); declared != "" {
		if c, ok := t.gaz.City(declared); !ok || c.Name != probe.city.Name {
			// The registry wins. The v0.165 OTLP receiver answers a request
			// the pipeline accepted with an empty partial_success whatever a
			// processor does, so the sender cannot be told; the NOC is.
			t.cityMismatch.Add(context.Background(), 1, t.probeAttr[pl.probe])
			t.warn(pl, reasonDeclaredCityClash, "probe declares city "+quote(declared)+"; tagged with the registry's "+quote(probe.city.Name), nil)
		}
	}
	return pl, "", ""
}

// tagMetric tags or drops each point of m and returns how many remain.
// A point is dropped for a time out of bounds (win), an impossible value,
// for what cannot be placed, and then for the per-probe limits (sc).
func (t *cityTagger) tagMetric(ctx context.Context, rej *rejections, pl placement, dst *dstCache, sc *seriesScope, win *timeWindow, m pmetric.Metric) int {
	isLatency := metricmodel.IsLatency(m.Name())
	mkey, mreason, mdetail := sc.metricKey(m, pl)
	check := func(ts pcommon.Timestamp, attrs pcommon.Map, valid bool, cost int) bool { // true: drop the point
		if reason, detail := win.check(unixNanos(ts)); reason != "" {
			t.reject(ctx, rej, reason, pl, strAttr(attrs, attrTarget), detail, 1)
			return true
		}
		if !valid {
			t.reject(ctx, rej, reasonInvalidValue, pl, strAttr(attrs, attrTarget), "metric "+quote(m.Name())+" has an impossible value", 1)
			return true
		}
		reason, detail := t.tagPoint(pl, dst, attrs)
		if reason == "" {
			reason, detail = mreason, mdetail
		}
		if reason == "" {
			reason, detail = sc.point(mkey, m.Name(), attrs, cost)
		}
		if reason != "" {
			t.reject(ctx, rej, reason, pl, strAttr(attrs, attrTarget), detail, 1)
			return true
		}
		return false
	}
	switch m.Type() {
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		dps.RemoveIf(func(dp pmetric.HistogramDataPoint) bool {
			return check(dp.Timestamp(), dp.Attributes(), t.validHistogram(dp, isLatency), histogramCost(dp))
		})
		return dps.Len()
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		dps.RemoveIf(func(dp pmetric.ExponentialHistogramDataPoint) bool {
			return check(dp.Timestamp(), dp.Attributes(), t.validExpHistogram(dp, isLatency), 1)
		})
		return dps.Len()
	case pmetric.MetricTypeSum:
		monotonic := m.Sum().IsMonotonic()
		dps := m.Sum().DataPoints()
		dps.RemoveIf(func(dp pmetric.NumberDataPoint) bool {
			return check(dp.Timestamp(), dp.Attributes(), t.validNumber(dp, monotonic, isLatency), 1)
		})
		return dps.Len()
	case pmetric.MetricTypeGauge:
		dps := m.Gauge().DataPoints()
		dps.RemoveIf(func(dp pmetric.NumberDataPoint) bool {
			return check(dp.Timestamp(), dp.Attributes(), t.validNumber(dp, false, isLatency), 1)
		})
		return dps.Len()
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		dps.RemoveIf(func(dp pmetric.SummaryDataPoint) bool {
			return check(dp.Timestamp(), dp.Attributes(), dp.Flags().NoRecordedValue() || finite(dp.Sum()), summaryCost(dp))
		})
		return dps.Len()
	default:
		return 0
	}
}

// tagPoint writes the canonical labels onto one point.
func (t *cityTagger) tagPoint(pl placement, dst *dstCache, attrs pcommon.Map) (string, string) {
	raw := strAttr(attrs, attrDstCity)
	if raw == "" {
		return reasonMissingDstCity, "data point has no dst_city attribute"
	}
	city, ok := dst.lookup(raw)
	if !ok {
		return notInGazetteer(reasonUnknownDstCity, attrDstCity, raw)
	}
	attrs.PutStr(labelSrcCity, pl.city.Name)
	attrs.PutStr(labelRegion, pl.city.Region)
	attrs.PutStr(labelIslandGroup, pl.city.IslandGroup)
	attrs.PutStr(attrDstCity, city.Name)
	attrs.PutStr(labelDstRegion, city.Region)
	attrs.PutStr(labelDstIslandGroup, city.IslandGroup)
	attrs.PutStr(labelCarrier, pl.carrier)
	attrs.PutStr(labelNetworkType, pl.networkType)
	attrs.PutStr(labelProbe, pl.probe)
	return "", ""
}

// notInGazetteer says why raw, a what, was not resolved: it is not valid
// UTF-8 (never looked up: the gazetteer's folding would drop the bad bytes
// and could match what the sender did not write), or it is unknown.
func notInGazetteer(unknown, what, raw string) (string, string) {
	if !utf8.ValidString(raw) {
		return reasonInvalidUTF8, what + " " + quote(raw) + " is not valid UTF-8"
	}
	return unknown, what + " " + quote(raw) + " is not in the gazetteer"
}

// validHistogram rejects histograms that cannot be true: buckets that do not
// add up to the count, bounds out of order, and for latency a negative,
// non-finite or absurd sum, min or max. A stale marker (no recorded value)
// passes: it is how a series ends.
func (t *cityTagger) validHistogram(dp pmetric.HistogramDataPoint, isLatency bool) bool {
	if dp.Flags().NoRecordedValue() {
		return true
	}
	bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
	if counts.Len() > 0 {
		if counts.Len() != bounds.Len()+1 {
			return false
		}
		var total uint64
		for i := range counts.Len() {
			total += counts.At(i)
		}
		if total != dp.Count() {
			return false
		}
	}
	for i := range bounds.Len() {
		b := bounds.At(i)
		if !finite(b) || (i > 0 && b <= bounds.At(i-1)) {
			return false
		}
	}
	if dp.HasSum() && (!finite(dp.Sum()) || (dp.Count() == 0 && dp.Sum() != 0)) {
		return false
	}
	if !isLatency {
		return true
	}
	return t.plausibleLatencies(dp.Count(), dp.HasSum(), dp.Sum(), dp.HasMin(), dp.Min(), dp.HasMax(), dp.Max())
}

// plausibleLatencies checks what a histogram says about its observations:
// no negative sum, a mean no larger than the largest believable latency,
// and a min and max within [0, max_latency_ms].
func (t *cityTagger) plausibleLatencies(count uint64, hasSum bool, sum float64, hasMin bool, minV float64, hasMax bool, maxV float64) bool {
	if hasSum && (sum < 0 || (count > 0 && sum/float64(count) > t.maxLatency)) {
		return false
	}
	if hasMin && !t.plausibleLatency(minV) {
		return false
	}
	if hasMax && !t.plausibleLatency(maxV) {
		return false
	}
	return true
}

func (t *cityTagger) plausibleLatency(v float64) bool {
	return finite(v) && v >= 0 && v <= t.maxLatency
}

// validExpHistogram applies the same rules to an exponential histogram: its
// zero, positive and negative buckets add up to its count, and for latency
// nothing is negative (no observation in a negative bucket) or absurd.
func (t *cityTagger) validExpHistogram(dp pmetric.ExponentialHistogramDataPoint, isLatency bool) bool {
	if dp.Flags().NoRecordedValue() {
		return true
	}
	if dp.HasSum() && (!finite(dp.Sum()) || (dp.Count() == 0 && dp.Sum() != 0)) {
		return false
	}
	total := dp.ZeroCount()
	var negative uint64
	for _, c := range dp.Positive().BucketCounts().All() {
		total += c
	}
	for _, c := range dp.Negative().BucketCounts().All() {
		total += c
		negative += c
	}
	if total != dp.Count() {
		return false
	}
	if !isLatency {
		return true
	}
	return negative == 0 && t.plausibleLatencies(dp.Count(), dp.HasSum(), dp.Sum(), dp.HasMin(), dp.Min(), dp.HasMax(), dp.Max())
}

// validNumber rejects non-finite values, negative monotonic counters, and
// for a latency sent as a gauge or sum, a value outside [0, max_latency_ms].
func (t *cityTagger) validNumber(dp pmetric.NumberDataPoint, monotonic, isLatency bool) bool {
	if dp.Flags().NoRecordedValue() {
		return true
	}
	var v float64
	switch dp.ValueType() {
	case pmetric.NumberDataPointValueTypeInt:
		v = float64(dp.IntValue())
	case pmetric.NumberDataPointValueTypeDouble:
		v = dp.DoubleValue()
	default:
		return false
	}
	if isLatency {
		return t.plausibleLatency(v)
	}
	return finite(v) && (!monotonic || v >= 0)
}

// reject counts, logs and publishes points rejected for reason, and
// records them in the call's rejections. target is the point's target
// attribute, empty for a whole resource.
func (t *cityTagger) reject(ctx context.Context, rej *rejections, reason string, pl placement, target, detail string, points int) {
	if points <= 0 {
		return
	}
	rej.add(reason, pl, target, detail, points)
	t.rejected.Add(ctx, int64(points), metric.WithAttributes(attribute.String("reason", reason)))
	// The event goes out as often as the log line: once per (reason, probe,
	// uplink) per log_interval, so a misconfigured probe cannot flood Loki
	// either, and each uplink's rejection shows under its carrier.
	if t.logOnce("citytag rejected data", reason, pl, detail) && t.bus != nil {
		e := events.ProbeRejected(time.Now(), pl.probe, reason, detail, points)
		if p, ok := t.probes[pl.probe]; ok {
			e.SrcCity, e.IslandGroup = p.city.Name, p.city.IslandGroup
		}
		// Canonical names from the gazetteer (bounded: the carrier is a
		// Loki label), or empty when the resource named none it knows.
		e.Carrier, e.NetworkType = pl.carrier, pl.networkType
		t.bus.Publish(e)
	}
}

// start starts forgetting idle series. (The event bus, if any, is found
// by startFunc.)
func (t *cityTagger) start(_ context.Context, _ component.Host) error {
	return t.limits.startSweeping(t.telemetry)
}

func (t *cityTagger) shutdown(context.Context) error {
	t.limits.shutdown()
	t.telemetry.Shutdown()
	return nil
}

// dstCache memoises dst_city lookups within one resource: a probe reports
// many points for the same few destinations.
type dstCache struct {
	gaz  *gazetteer.Gazetteer
	set  bool
	last string
	city gazetteer.City
	ok   bool
}

func (d *dstCache) lookup(raw string) (gazetteer.City, bool) {
	if !d.set || raw != d.last {
		d.set, d.last = true, raw
		d.city, d.ok = gazetteer.City{}, false
		if utf8.ValidString(raw) {
			d.city, d.ok = d.gaz.City(raw)
		}
	}
	return d.city, d.ok
}

// logOnce logs msg for (reason, probe, uplink) at most once per
// log_interval, with the count of similar lines held back since, so a
// misconfigured probe sending every 15 s cannot flood the collector's log.
// It reports whether it logged (the event goes out as often).
func (t *cityTagger) logOnce(msg, reason string, pl placement, detail string) bool {
	return t.logs.Warn(reason+"\x00"+pl.probe+"\x00"+pl.carrier+"\x00"+pl.networkType, msg,
		zap.String("reason", reason), zap.String("probe", pl.probe), zap.String("carrier", pl.carrier),
		zap.String("network_type", pl.networkType), zap.String("detail", detail))
}

// countPoints is how many data points a resource holds (without copying
// it into a pmetric.Metrics, which DataPointCount would need).
func countPoints(rm pmetric.ResourceMetrics) int {
	n := 0
	for _, sm := range rm.ScopeMetrics().All() {
		for _, m := range sm.Metrics().All() {
			switch m.Type() {
			case pmetric.MetricTypeGauge:
				n += m.Gauge().DataPoints().Len()
			case pmetric.MetricTypeSum:
				n += m.Sum().DataPoints().Len()
			case pmetric.MetricTypeHistogram:
				n += m.Histogram().DataPoints().Len()
			case pmetric.MetricTypeExponentialHistogram:
				n += m.ExponentialHistogram().DataPoints().Len()
			case pmetric.MetricTypeSummary:
				n += m.Summary().DataPoints().Len()
			}
		}
	}
	return n
}

func strAttr(m pcommon.Map, key string) string {
	v, ok := m.Get(key)
	if !ok {
		return ""
	}
	return v.AsString()
}

// unixNanos is a point's time as int64 nanoseconds; beyond year 2262 (what
// int64 holds) it is the largest, which is in the future all the same.
func unixNanos(ts pcommon.Timestamp) int64 { return int64(min(uint64(ts), math.MaxInt64)) }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// quote renders a value from the request for a refusal, a log line or an
// event: Go-quoted (control characters and invalid UTF-8 escaped, so the
// result is always valid UTF-8 and one line) and cut to maxQuoted bytes of
// the original at a rune boundary. Echoing raw bytes made the OTLP/HTTP
// receiver unable to encode the refusal (a 500 instead of a 400).
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:runeCut(s, maxQuoted)] + "…")
}

// maxQuoted keeps what outside input puts into refusals and logs short.
const maxQuoted = 64

// runeCut is the largest index ≤ n that does not split a UTF-8 sequence.
func runeCut(s string, n int) int {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// probeName renders a probe id from a request: as it is when it has the
// shape of a registered id, quoted otherwise.
func probeName(id string) string {
	if metricmodel.CheckProbeID(id) == nil {
		return id
	}
	return quote(id)
}
