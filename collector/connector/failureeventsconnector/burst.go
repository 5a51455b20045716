package failureeventsconnector

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/cumulative"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/internal/metricmodel/pmetricwalk"
)

// Results a failures point is counted under (bantay_failure_events_points).
const (
	resAccepted   = "accepted"     // a delta was derived (possibly zero)
	resBaseline   = "baseline"     // first point of a long-running counter: sets the base only
	resReset      = "reset"        // counter reset: the whole value is the delta
	resDuplicate  = "duplicate"    // same timestamp as the last point (a retried push)
	resOutOfOrder = "out_of_order" // older than the last point
	resInvalid    = "invalid"      // missing probe/target/reason, or not a number
	resStreamLim  = "stream_limit" // a new stream beyond max_streams
)

// Attribute names the connector adds to its events.
const (
	attrMethod       = "method"
	attrFirstTime    = "first_time"
	attrLastTime     = "last_time"
	attrContinued    = "continued"
	attrContinuation = "continuation"
	attrPart         = "part"
)

// stream is one cumulative failure counter series: a probe, an uplink, a
// target, a method and a reason.
type stream struct {
	id events.Event // the identifying fields, copied into every event

	method string
	// counter derives the increases (delta streams leave it untouched).
	counter cumulative.Counter
	// interval is the learnt spacing of the stream's points.
	interval    cumulative.Interval
	lastArrival time.Time // wall clock of the last point

	burst *burst
	// After a burst was cut at max_burst, its part number and last
	// failure, so that a burst starting right after continues it.
	prevPart   int
	prevLastNs int64
}

// burst is an open run of failures of one stream.
type burst struct {
	firstNs, lastNs int64
	count           float64
	part            int // 1, or 2.. for a continuation of a burst cut at max_burst
	quietPoints     int // consecutive points without a new failure
	// traceID is the trace id of the burst's first failure: the exemplar
	// the probe attached to it (the same one the store keeps).
	traceID pcommon.TraceID
}

// folder derives failure deltas from cumulative points and folds them into
// bursts. It is not safe for concurrent use; the connector serialises it.
type folder struct {
	cfg *Config
	// emit receives every finished burst; it must not block.
	emit func(events.Event)
	// count is told the result of every failures point.
	count func(result string)

	streams map[string]*stream
	// budget bounds the streams of every folder sharing it (max_streams
	// counts the connector's streams, whichever shard holds them).
	budget *streamBudget
	// probes maps a probe (service.instance.id) to the data time it was
	// first seen, so that a failure series appearing later (the first
	// failure of a reason) counts from zero instead of being taken for a
	// long-running counter.
	probes map[string]probeSeen
	key    []byte
	attrs  []kv
}

type probeSeen struct {
	firstNs     int64
	lastArrival time.Time
}

type kv struct{ k, v string }

// streamBudget counts streams against max_streams across folders.
type streamBudget struct {
	n   atomic.Int64
	max int64
}

func newStreamBudget(max int) *streamBudget { return &streamBudget{max: int64(max)} }

// take reserves one stream, or says the budget is spent.
func (b *streamBudget) take() bool {
	for {
		n := b.n.Load()
		if n >= b.max {
			return false
		}
		if b.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (b *streamBudget) give() { b.n.Add(-1) }

// newFolder folds for one shard; budget is shared with the other shards'
// folders (nil: a budget of the folder's own).
func newFolder(cfg *Config, emit func(events.Event), count func(string), budget *streamBudget) *folder {
	if budget == nil {
		budget = newStreamBudget(cfg.MaxStreams)
	}
	return &folder{cfg: cfg, emit: emit, count: count, streams: map[string]*stream{}, budget: budget, probes: map[string]probeSeen{}}
}

// consume folds every bantay.probe.failures point of md. Attempts points
// only tell it which probes are already known.
func (f *folder) consume(md pmetric.Metrics, now time.Time) {
	for instance, m := range pmetricwalk.Metrics(md) {
		f.metric(instance, m, now)
	}
}

// folds tells whether the folder reads m at all.
func folds(m pmetric.Metric) bool {
	return m.Type() == pmetric.MetricTypeSum && (m.Name() == metricmodel.Failures || m.Name() == metricmodel.Attempts)
}

// metric folds one metric of the probe instance.
func (f *folder) metric(instance string, m pmetric.Metric, now time.Time) {
	switch {
	case !folds(m):
	case m.Name() == metricmodel.Failures:
		f.failures(instance, m.Sum(), now)
	default:
		f.attempts(instance, m.Sum(), now)
	}
}

// probeOf is the probe id of a point: citytag's `probe` attribute, else
// the resource's service.instance.id.
func probeOf(instance string, attrs pcommon.Map) string {
	if v, ok := attrs.Get("probe"); ok && v.AsString() != "" {
		return v.AsString()
	}
	return instance
}

func (f *folder) attempts(instance string, sum pmetric.Sum, now time.Time) {
	dps := sum.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if p := probeOf(instance, dp.Attributes()); p != "" {
			f.seeProbe(p, int64(dp.Timestamp()), now)
		}
	}
}

func (f *folder) seeProbe(probe string, ts int64, now time.Time) {
	s, ok := f.probes[probe]
	if !ok {
		if len(f.probes) >= f.cfg.MaxStreams {
			return
		}
		s.firstNs = ts
	} else if ts < s.firstNs {
		s.firstNs = ts
	}
	s.lastArrival = now
	f.probes[probe] = s
}

func (f *folder) failures(instance string, sum pmetric.Sum, now time.Time) {
	delta := sum.AggregationTemporality() == pmetric.AggregationTemporalityDelta
	dps := sum.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if dp.Flags().NoRecordedValue() {
			continue
		}
		var v float64
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			v = float64(dp.IntValue())
		case pmetric.NumberDataPointValueTypeDouble:
			v = dp.DoubleValue()
		}
		if dp.ValueType() == pmetric.NumberDataPointValueTypeEmpty || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			f.count(resInvalid)
			continue
		}
		f.point(instance, dp.Attributes(), int64(dp.StartTimestamp()), int64(dp.Timestamp()), v, delta, now, dp.Exemplars())
	}
}

// point applies one failures point.
func (f *folder) point(instance string, attrs pcommon.Map, startNs, tsNs int64, value float64, delta bool, now time.Time, exemplars pmetric.ExemplarSlice) {
	probe := probeOf(instance, attrs)
	get := func(k string) string {
		if v, ok := attrs.Get(k); ok {
			return v.AsString()
		}
		return ""
	}
	if probe == "" || get("reason") == "" || get("target") == "" || tsNs <= 0 {
		f.count(resInvalid)
		return
	}
	// The stream's identity is every attribute, as in the store: a probe
	// with two uplinks has two series for the same target and reason.
	f.attrs = f.attrs[:0]
	for k, v := range attrs.All() {
		f.attrs = append(f.attrs, kv{k, v.AsString()})
	}
	slices.SortFunc(f.attrs, func(a, b kv) int { return cmp.Compare(a.k, b.k) })
	f.key = append(f.key[:0], instance...)
	for _, a := range f.attrs {
		f.key = append(f.key, 0xff)
		f.key = append(f.key, a.k...)
		f.key = append(f.key, 0xfe)
		f.key = append(f.key, a.v...)
	}

	probeFirst, probeKnown := f.probes[probe]
	f.seeProbe(probe, tsNs, now)

	st, ok := f.streams[string(f.key)]
	if !ok {
		if !f.budget.take() {
			f.count(resStreamLim)
			return
		}
		st = &stream{
			id: events.Event{
				Probe: probe, SrcCity: get("src_city"), Carrier: get("carrier"), IslandGroup: get("island_group"),
				DstCity: get("dst_city"), NetworkType: get("network_type"), Target: get("target"), Reason: get("reason"),
			},
			method: get("method"),
		}
		f.streams[string(f.key)] = st
	}
	st.lastArrival = now

	d, result := value, resAccepted
	// The failures this point adds happened after sinceNs: the previous
	// point, else the series' start.
	sinceNs := startNs
	if !delta {
		var verdict cumulative.Verdict
		var gap time.Duration
		verdict, d, gap = st.counter.Next(startNs, tsNs, value, 2*f.interval(st))
		st.interval.Learn(gap)
		if gap > 0 {
			sinceNs = tsNs - int64(gap)
		}
		switch verdict {
		case cumulative.Duplicate:
			f.count(resDuplicate)
			return
		case cumulative.OutOfOrder:
			f.count(resOutOfOrder)
			return
		case cumulative.Reset:
			result = resReset
		case cumulative.Baseline:
			// A long-running counter seen for the first time (a collector
			// restart) only sets the base, so old failures are not
			// replayed as a burst, unless the probe was already reporting
			// before this series appeared: the SDK creates a reason's
			// series at its first failure, with the probe's start time,
			// so that series counts from zero.
			if probeKnown && probeFirst.firstNs < tsNs {
				d = value
			} else {
				result = resBaseline
			}
		}
	}
	f.count(result)
	f.fold(st, tsNs, d, newTrace(exemplars, sinceNs, tsNs))
}

// newTrace is the trace id of the earliest exemplar of a failure between
// sinceNs (exclusive) and tsNs: the probe's reservoir repeats older
// exemplars until newer failures replace them, and those are not this
// point's failures. Zero when the point has none (a probe that sends no
// exemplars).
func newTrace(exemplars pmetric.ExemplarSlice, sinceNs, tsNs int64) pcommon.TraceID {
	var id pcommon.TraceID
	var at int64
	for i := 0; i < exemplars.Len(); i++ {
		ex := exemplars.At(i)
		t := int64(ex.Timestamp())
		if !ex.TraceID().IsEmpty() && t > sinceNs && t <= tsNs && (id.IsEmpty() || t < at) {
			id, at = ex.TraceID(), t
		}
	}
	return id
}

// interval is the stream's learnt point spacing, or probe_interval.
func (f *folder) interval(st *stream) time.Duration {
	return st.interval.Or(f.cfg.ProbeInterval)
}

// fold adds d new failures seen at tsNs to the stream's burst; trace is
// the trace id of one of them (newTrace).
func (f *folder) fold(st *stream, tsNs int64, d float64, trace pcommon.TraceID) {
	b := st.burst
	if d <= 0 {
		if b != nil {
			b.quietPoints++
			if b.quietPoints >= f.cfg.QuietIntervals {
				f.close(st, false)
			}
		}
		return
	}
	if b == nil {
		b = &burst{firstNs: tsNs, lastNs: tsNs, part: 1, traceID: trace}
		// A burst that starts right after one cut at max_burst (no quiet
		// period between them) continues it.
		if st.prevPart > 0 && tsNs-st.prevLastNs <= int64(f.cfg.QuietIntervals)*int64(f.interval(st)) {
			b.part = st.prevPart + 1
		}
		st.prevPart = 0
		st.burst = b
	}
	b.count += d
	b.quietPoints = 0
	if tsNs > b.lastNs {
		b.lastNs = tsNs
	}
	if b.lastNs-b.firstNs >= int64(f.cfg.MaxBurst) {
		st.prevPart, st.prevLastNs = b.part, b.lastNs
		f.close(st, true)
	}
}

// tick closes the bursts of streams that went silent (no point for
// quiet_intervals + 1 intervals: the probe stopped reporting, so no quiet
// points will come) and forgets streams idle for longer than expire.
func (f *folder) tick(now time.Time) {
	for k, st := range f.streams {
		idle := now.Sub(st.lastArrival)
		if st.burst != nil && idle > time.Duration(f.cfg.QuietIntervals+1)*f.interval(st) {
			f.close(st, false)
		}
		if idle > f.cfg.Expire {
			if st.burst != nil {
				f.close(st, false)
			}
			delete(f.streams, k)
			f.budget.give()
		}
	}
	for p, s := range f.probes {
		if now.Sub(s.lastArrival) > f.cfg.Expire {
			delete(f.probes, p)
		}
	}
}

// closeAll emits every open burst (at shutdown).
func (f *folder) closeAll() {
	for _, st := range f.streams {
		if st.burst != nil {
			f.close(st, false)
		}
	}
}

// close emits the stream's burst; continued says it was cut at max_burst.
func (f *folder) close(st *stream, continued bool) {
	b := st.burst
	st.burst = nil
	e := st.id
	first, last := time.Unix(0, b.firstNs).UTC(), time.Unix(0, b.lastNs).UTC()
	// Failures are whole numbers; a double counter with fractional steps
	// still opened a burst, so it counts at least one.
	n := max(int64(math.Round(b.count)), 1)
	e.Kind = events.KindProbeFailure
	e.Time = first
	e.Severity = events.SeverityWarn
	e.Error = reasonText(e.Reason)
	e.TraceID = b.traceID
	e.Attrs = map[string]any{
		events.AttrCount: n,
		attrFirstTime:    first,
		attrLastTime:     last,
	}
	if st.method != "" {
		e.Attrs[attrMethod] = st.method
	}
	if continued {
		e.Attrs[attrContinued] = true
	}
	if b.part > 1 {
		e.Attrs[attrContinuation] = true
		e.Attrs[attrPart] = b.part
	}
	e.Body = body(&e, st.method, n, first, last, continued, b.part)
	f.emit(e)
}

// body is the sentence, e.g. "dvo-01 (Davao, Globe 5g): 5 timeouts to
// 203.0.113.7:443 (tcp) between 02:00:00 and 02:01:15 UTC".
func body(e *events.Event, method string, n int64, first, last time.Time, continued bool, part int) string {
	var sb strings.Builder
	sb.WriteString(e.Probe)
	var where []string
	for _, s := range []string{e.SrcCity, strings.TrimSpace(e.Carrier + " " + e.NetworkType)} {
		if s != "" {
			where = append(where, s)
		}
	}
	if len(where) > 0 {
		fmt.Fprintf(&sb, " (%s)", strings.Join(where, ", "))
	}
	fmt.Fprintf(&sb, ": %d %s to %s", n, reasonNoun(e.Reason, n), e.Target)
	if method != "" {
		fmt.Fprintf(&sb, " (%s)", method)
	}
	if e.DstCity != "" {
		fmt.Fprintf(&sb, " in %s", e.DstCity)
	}
	if first.Equal(last) {
		fmt.Fprintf(&sb, " at %s UTC", first.Format("15:04:05"))
	} else {
		fmt.Fprintf(&sb, " between %s and %s UTC", first.Format("15:04:05"), last.Format("15:04:05"))
	}
	if part > 1 {
		fmt.Fprintf(&sb, ", continued (part %d)", part)
	}
	if continued {
		sb.WriteString(", still failing")
	}
	return sb.String()
}

// reasonNoun names n failures of the metric model's reason.
func reasonNoun(reason string, n int64) string {
	one, many := reason+" failure", reason+" failures"
	switch reason {
	case "timeout":
		one, many = "timeout", "timeouts"
	case "refused":
		one, many = "refused connection", "refused connections"
	case "dns":
		one, many = "DNS failure", "DNS failures"
	case "tls":
		one, many = "TLS failure", "TLS failures"
	case "http_status":
		one, many = "bad HTTP status", "bad HTTP statuses"
	case "other":
		one, many = "failure", "failures"
	}
	if n == 1 {
		return one
	}
	return many
}

// reasonText is the `error` attribute: what the reason means. The counters
// carry no error text, so this is the most the metrics can tell.
func reasonText(reason string) string {
	switch reason {
	case "timeout":
		return "no answer within the probe timeout"
	case "refused":
		return "connection refused"
	case "dns":
		return "name resolution failed"
	case "tls":
		return "TLS handshake or certificate verification failed"
	case "http_status":
		return "unexpected HTTP status"
	case "other":
		return "other error"
	}
	return reason
}
