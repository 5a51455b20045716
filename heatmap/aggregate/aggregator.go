// Package aggregate is the heatmap's arithmetic: it turns cumulative probe
// points into cells keyed by (src_city, dst_city, carrier, network_type),
// each a fixed ring of time × latency-bucket slots with sliding windows
// (quantiles computed exactly as Prometheus's histogram_quantile), loss,
// staleness, a trend against the cell's own baseline, and the hysteresis
// that decides its path state changes. It knows nothing of websockets or
// the store: the heatmap exporter and heatmap/rebuild feed it (Observe),
// heatmap/hub reads it (Collect, Drilldown).
package aggregate

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/cumulative"
)

// Kind says which metric of the metric model a point belongs to.
type Kind uint8

// The metrics the heatmap consumes (docs/metric-model.md).
const (
	// KindLatency is network.latency (network_latency_milliseconds).
	KindLatency Kind = iota + 1
	// KindAttempts is bantay.probe.attempts (bantay_probe_attempts_total).
	KindAttempts
	// KindFailures is bantay.probe.failures (bantay_probe_failures_total).
	KindFailures
	// KindJitter is bantay.probe.jitter, the sum of the absolute
	// differences of consecutive RTTs of a round in ms
	// (bantay_probe_jitter_milliseconds_total).
	KindJitter
	// KindJitterPairs is bantay.probe.jitter.pairs, the number of those
	// differences (bantay_probe_jitter_pairs_total).
	KindJitterPairs
	// KindLatencyNative is network.latency.native, the same measurements as
	// KindLatency in a base-2 exponential histogram
	// (network_latency_native_milliseconds, a native histogram).
	KindLatencyNative
)

// String returns the metric's short name used in the heatmap's own metrics.
func (k Kind) String() string {
	switch k {
	case KindLatency:
		return "latency"
	case KindAttempts:
		return "attempts"
	case KindFailures:
		return "failures"
	case KindJitter:
		return "jitter"
	case KindJitterPairs:
		return "jitter_pairs"
	case KindLatencyNative:
		return "latency_native"
	}
	return "unknown"
}

// Point is one CUMULATIVE data point as the exporter (or the rebuild) hands
// it over. The heatmap derives deltas itself, per Stream.
type Point struct {
	Kind Kind
	// Stream identifies the cumulative series: build it with
	// AppendStreamKey. The heatmap copies it when it first sees it.
	Stream []byte
	Cell   pathstate.CellKey
	// Start is the point's start timestamp; zero when unknown. A change of
	// Start is a counter reset.
	Start time.Time
	Time  time.Time
	// Value is the counter value (every Kind but KindLatency).
	Value float64
	// Bounds, Counts and Sum are the histogram (KindLatency): explicit upper
	// bounds in ms, per-bucket (not cumulative over le) counts, one more
	// than Bounds for the +Inf bucket, and the sum of observations.
	Bounds []float64
	Counts []uint64
	Sum    float64
	// Exp and Sum are the histogram of KindLatencyNative.
	Exp *Exponential
	// Twin marks a KindLatencyNative point whose measurements also arrive
	// as a KindLatency stream (the probe's recording.histograms: both):
	// only the cell's native ring takes them, so no sample counts twice.
	// Without a twin they are also folded into the cell's classic buckets.
	Twin bool
	// Delta marks a point with delta temporality: its values are added as
	// they are, without stream state (so a retried delta point cannot be
	// recognised; the collector pipeline runs deltatocumulative first).
	Delta bool
}

// Label is one name/value pair of a stream's identity.
type Label struct{ Name, Value string }

// AppendStreamKey appends the identity of one cumulative stream to dst: the
// metric kind, the probe instance (service.instance.id, Prometheus label
// "instance") and the point's labels, which must be sorted by name. Names
// are escaped the way the store escapes them (anything but [A-Za-z0-9_]
// becomes "_"), and the store's own labels ("__name__", "__type__", any
// "__*"), "le", "job", "instance" and "otel_scope_*" are skipped, so the exporter (from OTLP attributes) and Rebuild (from TSDB
// labels) produce the same key for the same series and a restart continues
// the deltas where the TSDB left off.
func AppendStreamKey(dst []byte, kind Kind, instance string, labels []Label) []byte {
	dst = append(dst, byte('0'+kind), 0xff)
	dst = append(dst, instance...)
	for _, l := range labels {
		switch {
		case strings.HasPrefix(l.Name, "__"), l.Name == "le", l.Name == "job", l.Name == "instance",
			strings.HasPrefix(l.Name, "otel_scope_"):
			continue
		}
		dst = append(dst, 0xff)
		for i := 0; i < len(l.Name); i++ {
			c := l.Name[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				c = '_'
			}
			dst = append(dst, c)
		}
		dst = append(dst, 0xfe)
		dst = append(dst, l.Value...)
	}
	return dst
}

// stream is the delta-tracking state of one cumulative series.
type stream struct {
	cell   *cell
	kind   Kind
	series cumulative.Series
	counts []uint64  // histogram: last cumulative count per cell bucket (classic or native layout)
	sum    float64   // histogram: last cumulative sum
	value  float64   // counter: last cumulative value
	fill   *backfill // after a gap: where a backlog's points go (late.go)
}

// cell is one (src, dst, carrier, network type) path.
type cell struct {
	key  pathstate.CellKey
	id   string
	ring *ring
	// native holds the native (exponential) buckets of the samples that
	// have them, in the NativeBounds layout; nil until the cell's first
	// native point. Its counters are unused: attempts, failures and jitter
	// are in ring.
	native   *ring
	lastSeen int64               // ms
	interval cumulative.Interval // learnt spacing of points of one stream
	health   health
	removed  bool
	view     *View // last computed view (what the hub last saw)
	late     *lateSlots
}

// Stats are one window's numbers for one cell. NaN = not computable.
type Stats struct {
	P50, P90, P99, Mean float64
	Count               uint64
	Attempts, Failures  float64
	Loss                float64
	// Jitter is the mean absolute difference of consecutive RTTs within
	// the window's rounds, ms: NaN without two answers in one round.
	Jitter float64
}

// View is an immutable snapshot of a cell's numbers; the hub keeps and
// shares them without locks.
type View struct {
	ID       string
	Key      pathstate.CellKey
	Wins     []Stats // in Config.Windows order
	BaseP50  float64
	LastSeen int64 // Unix ms of the newest point
	Stale    bool
	State    string // "ok", "degraded" or "stale"
}

// Trend is window wi's p50 over the baseline p50; NaN without a baseline.
func (v *View) Trend(wi int) float64 {
	if v.BaseP50 > 0 {
		return round3(v.Wins[wi].P50 / v.BaseP50)
	}
	return math.NaN()
}

// Changed is a view plus a bit per window whose numbers changed (bits
// for all windows when a common field changed).
type Changed struct {
	View *View
	Mask uint32
}

// Aggregator holds all cells and the per-stream delta state. One mutex
// guards everything: an observation is a few hundred nanoseconds, and the
// periodic collect is O(cells × buckets).
type Aggregator struct {
	mu       sync.Mutex
	cfg      Config
	resMs    int64
	bounds   []float64
	nb       int
	winSlots []int64
	evWin    int // index of Events.Window in cfg.Windows
	firstMax time.Duration
	cells    map[pathstate.CellKey]*cell
	byID     map[string]*cell
	streams  map[string]*stream
	scratch  []uint64
	scratch2 []uint64
	baseline []uint64 // judge's: the history without the events window
	// The same three for the native layout.
	nscratch, nscratch2, nbaseline []uint64
	// nativeToClassic is the classic bucket that holds each native
	// bucket's upper bound (toClassic).
	nativeToClassic []int
	// scratchView is where collect computes a cell's numbers before it
	// knows whether they changed.
	scratchView View
	lastSweep   int64
	m           *metrics
}

// New validates cfg (zero fields take defaults) and returns an empty
// aggregation. Its metrics are registered by whoever serves them
// (Collectors).
func New(cfg Config) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m := newMetrics()
	a := &Aggregator{
		cfg:     cfg,
		resMs:   cfg.Resolution.Milliseconds(),
		bounds:  cfg.Bounds,
		nb:      len(cfg.Bounds) + 1,
		cells:   map[pathstate.CellKey]*cell{},
		byID:    map[string]*cell{},
		streams: map[string]*stream{},
		m:       m,
	}
	for i, w := range cfg.Windows {
		a.winSlots = append(a.winSlots, int64(w/cfg.Resolution))
		if w == cfg.Events.Window {
			a.evWin = i
		}
	}
	// A stream's first point counts as a delta only if it started recently
	// (a fresh probe, or deltatocumulative's first point); otherwise it is
	// a long-running counter seen for the first time and only sets the base.
	a.firstMax = 2 * max(cfg.ProbeInterval, cfg.Resolution)
	a.scratch = make([]uint64, a.nb)
	a.scratch2 = make([]uint64, a.nb)
	a.baseline = make([]uint64, a.nb)
	a.nscratch = make([]uint64, NativeBuckets+1)
	a.nscratch2 = make([]uint64, NativeBuckets+1)
	a.nbaseline = make([]uint64, NativeBuckets+1)
	a.nativeToClassic = make([]int, NativeBuckets+1)
	for i := range a.nativeToClassic {
		a.nativeToClassic[i] = len(a.bounds) // +Inf
		if i < NativeBuckets {
			a.nativeToClassic[i] = sort.SearchFloat64s(a.bounds, NativeBounds[i])
		}
	}
	a.scratchView.Wins = make([]Stats, len(cfg.Windows))
	return a, nil
}

// Config returns the effective configuration (defaults filled in).
func (a *Aggregator) Config() Config { return a.cfg }

// Collectors are the aggregation's metrics (bantay_heatmap_points_total,
// _clamped_observations_total, _cells, _streams), to be registered.
func (a *Aggregator) Collectors() []prometheus.Collector { return a.m.all }

func (a *Aggregator) slotOf(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	return ms / a.resMs
}

func (a *Aggregator) count(k Kind, result string) {
	if byKind, ok := a.m.points[k]; ok {
		byKind[result].Inc()
	}
}

// cellFor returns the cell for key, creating it within MaxCells.
func (a *Aggregator) cellFor(key pathstate.CellKey) *cell {
	if c, ok := a.cells[key]; ok {
		return c
	}
	if len(a.cells) >= a.cfg.MaxCells {
		return nil
	}
	c := &cell{key: key, id: key.ID(), ring: newRing(a.nb, int64(a.cfg.History/a.cfg.Resolution), a.winSlots)}
	a.cells[key] = c
	a.byID[c.id] = c
	a.m.cells.Set(float64(len(a.cells)))
	return c
}

// fold maps a histogram's buckets onto the cell bounds: each source bucket
// goes to the cell bucket that holds its upper bound. Exact when the source
// bounds include every cell bound (the metric model's bounds do).
func (a *Aggregator) fold(dst []uint64, bounds []float64, counts []uint64) bool {
	if len(counts) != len(bounds)+1 {
		return false
	}
	clear(dst)
	same := len(bounds) == len(a.bounds)
	if same {
		for i, b := range bounds {
			if b != a.bounds[i] {
				same = false
				break
			}
		}
	}
	if same {
		copy(dst, counts)
		return true
	}
	for i, c := range counts {
		j := len(a.bounds) // +Inf
		if i < len(bounds) {
			if math.IsNaN(bounds[i]) || (i > 0 && bounds[i] <= bounds[i-1]) {
				return false
			}
			j = sort.SearchFloat64s(a.bounds, bounds[i])
		}
		dst[j] += c
	}
	return true
}

// Observe applies one cumulative (or Delta) point. It is safe for
// concurrent use and counts every point it cannot use in
// bantay_heatmap_points_total{result!="accepted"}.
func (a *Aggregator) Observe(p *Point) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observeLocked(p)
}

func (a *Aggregator) observeLocked(p *Point) {
	if p.Cell.SrcCity == "" || p.Cell.DstCity == "" || p.Cell.Carrier == "" || p.Cell.NetworkType == "" {
		a.count(p.Kind, resBadLabels)
		return
	}
	if p.Kind == KindLatency && !a.fold(a.scratch, p.Bounds, p.Counts) ||
		p.Kind == KindLatencyNative && (p.Exp == nil || !foldNative(a.nscratch, p.Exp)) {
		a.count(p.Kind, resBadBuckets)
		return
	}
	if p.Delta {
		a.observeDelta(p)
		return
	}
	st, ok := a.streams[string(p.Stream)]
	if !ok {
		if len(a.streams) >= a.cfg.MaxStreams {
			a.count(p.Kind, resStreamLimit)
			return
		}
		st = &stream{kind: p.Kind}
		if cur, _ := a.buffers(p.Kind); cur != nil {
			st.counts = make([]uint64, len(cur))
		}
		a.streams[string(p.Stream)] = st
		a.m.streams.Set(float64(len(a.streams)))
	}
	c := st.cell
	if c == nil || c.removed || c.key != p.Cell {
		c = a.cellFor(p.Cell)
		if c == nil {
			a.count(p.Kind, resCellLimit)
			return
		}
		st.cell = c
	}
	tMs := p.Time.UnixMilli()
	var startNs int64
	if !p.Start.IsZero() && p.Start.UnixNano() > 0 {
		// Whole milliseconds, as the store keeps them, so a point read
		// back by Rebuild and the same point live are one timestamp.
		startNs = p.Start.UnixMilli() * int64(time.Millisecond)
	}
	prevStartNs, prevNs, spacing := st.series.Start(), st.series.Last(), c.interval.Or(a.cfg.ProbeInterval)
	verdict, gap := st.series.Next(startNs, tMs*int64(time.Millisecond), a.firstMax, a.decreased(st, p))
	c.interval.Learn(gap)
	var result string
	switch verdict {
	case cumulative.Duplicate:
		a.count(p.Kind, resDuplicate)
		return
	case cumulative.OutOfOrder:
		if !a.backfillPoint(st, c, p, startNs, tMs*int64(time.Millisecond)) {
			a.count(p.Kind, resOutOfOrder)
		}
		return
	case cumulative.Baseline:
		result = resBaseline
	case cumulative.Reset:
		result = resReset
	default:
		result = resAccepted
	}
	full := verdict.Whole() // take the whole cumulative value as the delta

	slot := a.slotOf(tMs)
	apply := result != resBaseline
	if apply && !c.ring.inRing(slot) {
		result, apply = resTooOld, false
	}
	switch p.Kind {
	case KindLatency, KindLatencyNative:
		cur, d := a.buffers(p.Kind)
		if apply {
			for i := range d {
				if full {
					d[i] = cur[i]
				} else {
					d[i] = cur[i] - st.counts[i]
				}
			}
			sum := p.Sum
			if !full {
				sum -= st.sum
			}
			if math.IsNaN(sum) || sum < 0 {
				sum = 0
			}
			a.addLatency(c, p, slot, d, sum)
			if gap > gapFactor*spacing {
				a.openBackfill(st, prevStartNs, prevNs, slot, startNs, tMs*int64(time.Millisecond), d, sum, 0)
			}
		}
		copy(st.counts, cur)
		st.sum = p.Sum
	default:
		if ctr, ok := counterOf(p.Kind); ok && apply {
			d := p.Value
			if !full {
				d -= st.value
			}
			if d > 0 && !math.IsInf(d, 0) {
				c.ring.addCounter(slot, ctr, d)
				if gap > gapFactor*spacing {
					a.openBackfill(st, prevStartNs, prevNs, slot, startNs, tMs*int64(time.Millisecond), nil, 0, d)
				}
			}
		}
		st.value = p.Value
	}
	if tMs > c.lastSeen {
		c.lastSeen = tMs
	}
	a.count(p.Kind, result)
}

// observeDelta adds a delta point to its cell. Caller holds a.mu and has
// folded a histogram into a.scratch.
func (a *Aggregator) observeDelta(p *Point) {
	c := a.cellFor(p.Cell)
	if c == nil {
		a.count(p.Kind, resCellLimit)
		return
	}
	tMs := p.Time.UnixMilli()
	slot := a.slotOf(tMs)
	if !c.ring.inRing(slot) {
		a.count(p.Kind, resTooOld)
		return
	}
	switch p.Kind {
	case KindLatency, KindLatencyNative:
		sum := p.Sum
		if math.IsNaN(sum) || sum < 0 {
			sum = 0
		}
		cur, _ := a.buffers(p.Kind)
		a.addLatency(c, p, slot, cur, sum)
	default:
		if ctr, ok := counterOf(p.Kind); ok && p.Value > 0 && !math.IsInf(p.Value, 0) {
			c.ring.addCounter(slot, ctr, p.Value)
		}
	}
	if tMs > c.lastSeen {
		c.lastSeen = tMs
	}
	a.count(p.Kind, resAccepted)
}

// buffers are the layout's buffers of a histogram kind: the point's
// cumulative counts as observeLocked folded them, and room for its delta.
// Nil for a counter.
func (a *Aggregator) buffers(k Kind) (cur, d []uint64) {
	switch k {
	case KindLatency:
		return a.scratch, a.scratch2
	case KindLatencyNative:
		return a.nscratch, a.nscratch2
	}
	return nil, nil
}

// addLatency adds a histogram delta d of p's kind to slot s of cell c. A
// classic one goes to the classic ring; a native one to the native ring
// and, unless a classic twin carries the same measurements, also folded to
// the classic ring: so the classic ring counts every sample of the cell
// once, and a window whose native count equals its classic count has a
// native form of every sample (Aggregator.stats). Caller holds a.mu; for a
// native point it may use a.scratch.
func (a *Aggregator) addLatency(c *cell, p *Point, s int64, d []uint64, sum float64) {
	if p.Kind == KindLatencyNative {
		if c.native == nil {
			c.native = newRing(NativeBuckets+1, c.ring.n, a.winSlots)
		}
		if !c.native.inRing(s) {
			return // the classic ring took it (inRing); its native form left the history
		}
		if cl := c.native.addHistogram(s, d, sum); cl > 0 {
			a.m.clamped.Add(float64(cl))
		}
		if p.Twin {
			return
		}
		d = a.toClassic(d)
	}
	if cl := c.ring.addHistogram(s, d, sum); cl > 0 {
		a.m.clamped.Add(float64(cl))
	}
}

// toClassic folds native bucket counts into the classic layout (each native
// bucket into the classic bucket that holds its upper bound), in a.scratch.
func (a *Aggregator) toClassic(d []uint64) []uint64 {
	clear(a.scratch)
	for i, n := range d {
		a.scratch[a.nativeToClassic[i]] += n
	}
	return a.scratch
}

// takeLatency removes what addLatency added to slot s (a backlog point's
// share of its recovery slot; late.go).
func (a *Aggregator) takeLatency(c *cell, p *Point, s int64, d []uint64, sum float64) {
	if p.Kind == KindLatencyNative {
		c.native.takeHistogram(s, d, sum)
		if p.Twin {
			return
		}
		d = a.toClassic(d)
	}
	c.ring.takeHistogram(s, d, sum)
}

// decreased reports whether any cumulative value went down (a reset).
func (a *Aggregator) decreased(st *stream, p *Point) bool {
	if cur, _ := a.buffers(p.Kind); cur != nil {
		for i, v := range cur {
			if v < st.counts[i] {
				return true
			}
		}
		return false
	}
	return p.Value < st.value
}

// allNative reports whether native window nw (nil: the cell has none)
// holds a native form of each of the count samples of its classic twin
// window. The classic ring counts every sample once and the native ring
// those that have a native form (addLatency), so equal counts mean all.
func allNative(nw *window, count uint64) bool {
	return nw != nil && count > 0 && nw.count() == count
}

// nativeWindow is the cell's native window i, nil without a native ring.
func (c *cell) nativeWindow(i int) *window {
	if c.native == nil {
		return nil
	}
	return &c.native.wins[i]
}

// quantile is the q-quantile of total samples in bucket counts of the
// native layout (native) or the classic one.
func (a *Aggregator) quantile(q float64, counts []uint64, total uint64, native bool) float64 {
	if native {
		return nativeQuantile(q, counts, total)
	}
	return bucketQuantileN(q, a.bounds, counts, total)
}

// quantileOf is quantile with the total counted.
func (a *Aggregator) quantileOf(q float64, counts []uint64, native bool) float64 {
	var total uint64
	for _, n := range counts {
		total += n
	}
	return a.quantile(q, counts, total, native)
}

// stats are window w's numbers, the latency ones from its native twin nw
// where that holds every sample: the finer distribution.
func (a *Aggregator) stats(w, nw *window) Stats {
	s := Stats{Count: w.count(), Attempts: w.ctr[ctrAttempts], Failures: w.ctr[ctrFailures]}
	native := allNative(nw, s.Count)
	counts, sum := w.counts, w.sum
	if native {
		counts, sum = nw.counts, nw.sum
	}
	s.P50 = round3(a.quantile(0.5, counts, s.Count, native))
	s.P90 = round3(a.quantile(0.9, counts, s.Count, native))
	s.P99 = round3(a.quantile(0.99, counts, s.Count, native))
	s.Mean = math.NaN()
	if s.Count > 0 {
		s.Mean = round3(sum / float64(s.Count))
	}
	s.Attempts = math.Round(s.Attempts*1000) / 1000
	s.Failures = math.Round(s.Failures*1000) / 1000
	s.Loss = math.NaN()
	if s.Attempts > 0 {
		s.Loss = round6(min(s.Failures/s.Attempts, 1))
	}
	s.Jitter = jitter(w.ctr)
	return s
}

// jitter is the mean jitter of summed counters, ms; NaN without a pair.
// Below half a pair is float32 residue of pairs that left the window.
func jitter(ctr [numCounters]float64) float64 {
	if ctr[ctrJitterPairs] < 0.5 {
		return math.NaN()
	}
	return round3(max(ctr[ctrJitter], 0) / ctr[ctrJitterPairs])
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// Equal reports whether two windows have the same numbers (NaN equal to
// NaN).
func (s Stats) Equal(o Stats) bool {
	return sameFloat(s.P50, o.P50) && sameFloat(s.P90, o.P90) && sameFloat(s.P99, o.P99) &&
		sameFloat(s.Mean, o.Mean) && s.Count == o.Count && sameFloat(s.Attempts, o.Attempts) &&
		sameFloat(s.Failures, o.Failures) && sameFloat(s.Loss, o.Loss) && sameFloat(s.Jitter, o.Jitter)
}

// staleAfterMs is the silence after which a cell is stale.
func (a *Aggregator) staleAfterMs(c *cell) int64 {
	return int64(a.cfg.StaleAfter * float64(c.interval.Or(a.cfg.ProbeInterval).Milliseconds()))
}

// Collect brings every cell to time now: slides its windows, recomputes its
// view, judges its health, expires it if its probes vanished. It returns
// the cells whose view changed, the ids of removed cells and the events.
func (a *Aggregator) Collect(now time.Time) (changed []Changed, removed []string, events []pathstate.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	nowMs := now.UnixMilli()
	cur := a.slotOf(nowMs)
	expireMs := a.cfg.Expire.Milliseconds()
	allMask := uint32(1)<<len(a.cfg.Windows) - 1
	for key, c := range a.cells {
		if nowMs-c.lastSeen > expireMs {
			delete(a.cells, key)
			delete(a.byID, c.id)
			c.removed = true
			removed = append(removed, c.id)
			continue
		}
		c.ring.moveTo(cur)
		if c.native != nil {
			c.native.moveTo(cur)
		}
		// Compute into a reused view; only a changed cell gets a new
		// immutable one, so a quiet tick allocates nothing per cell.
		v := &a.scratchView
		*v = View{ID: c.id, Key: c.key, LastSeen: c.lastSeen, Wins: v.Wins[:len(a.cfg.Windows)]}
		for i := range a.cfg.Windows {
			v.Wins[i] = a.stats(&c.ring.wins[i], c.nativeWindow(i))
		}
		hi := len(c.ring.wins) - 1
		hist, nhist := &c.ring.wins[hi], c.nativeWindow(hi)
		histCount := hist.count()
		histNative := allNative(nhist, histCount)
		histCounts := hist.counts
		if histNative {
			histCounts = nhist.counts
		}
		v.BaseP50 = round3(a.quantile(0.5, histCounts, histCount, histNative))
		v.Stale = nowMs-c.lastSeen > a.staleAfterMs(c)
		if ev, ok := a.judge(c, v, now, nowMs, histNative); ok {
			events = append(events, ev)
		}
		switch {
		case v.Stale:
			v.State = "stale"
		case c.health.degraded:
			v.State = "degraded"
		default:
			v.State = "ok"
		}
		var mask uint32
		if o := c.view; o == nil || !sameFloat(o.BaseP50, v.BaseP50) || o.LastSeen != v.LastSeen || o.Stale != v.Stale || o.State != v.State {
			mask = allMask
		} else {
			for i := range v.Wins {
				if !v.Wins[i].Equal(o.Wins[i]) {
					mask |= 1 << i
				}
			}
		}
		if mask != 0 {
			nv := *v
			nv.Wins = append([]Stats(nil), v.Wins...)
			c.view = &nv
			changed = append(changed, Changed{View: &nv, Mask: mask})
		}
	}
	if len(removed) > 0 {
		a.m.cells.Set(float64(len(a.cells)))
	}
	// Streams are swept once per resolution step: their state is small but
	// there can be many, and a vanished probe's streams must not pile up.
	if nowMs-a.lastSweep >= a.resMs {
		a.lastSweep = nowMs
		for k, st := range a.streams {
			if nowMs-st.series.Last()/int64(time.Millisecond) > expireMs {
				delete(a.streams, k)
			}
		}
		a.m.streams.Set(float64(len(a.streams)))
	}
	return changed, removed, events
}

// judge updates the cell's stale flag and degraded hysteresis. native: the
// whole history has native buckets, so both p95s come from them (the two
// sides of the comparison from one layout).
func (a *Aggregator) judge(c *cell, v *View, now time.Time, nowMs int64, native bool) (pathstate.Event, bool) {
	r, base := c.ring, a.baseline
	if native {
		r, base = c.native, a.nbaseline
	}
	hist, ew := &r.wins[len(r.wins)-1], &r.wins[a.evWin]
	ws := v.Wins[a.evWin]
	// The baseline is the path's past: the history without the window being
	// judged. With the window in it, a path younger than the history
	// compared a slowdown mostly with itself, and a latency incident on a
	// fresh collector (or a demo a few minutes old) never turned the cell red.
	for i, n := range hist.counts {
		base[i] = n - ew.counts[i]
	}
	ev := pathstate.Event{
		Time: now, Cell: c.key, Window: a.cfg.Events.Window,
		P95After:  round3(a.quantileOf(0.95, ew.counts, native)),
		P95Before: round3(a.quantileOf(0.95, base, native)),
		Loss:      ws.Loss, Samples: ws.Count, LastSeen: time.UnixMilli(c.lastSeen),
	}
	if v.Stale != c.health.stale {
		c.health.stale = v.Stale
		c.health.pendingSince = 0
		if v.Stale {
			ev.Kind = pathstate.Stale
			ev.Reason = "no data for " + (time.Duration(nowMs-c.lastSeen) * time.Millisecond).Round(time.Second).String()
		} else {
			ev.Kind = pathstate.Back
			ev.Reason = "data again"
		}
		if c.health.degraded {
			ev.P95Before = c.health.p95Before
		}
		return ev, true
	}
	if v.Stale {
		return pathstate.Event{}, false
	}
	kind, reason, ok := c.health.judge(&a.cfg.Events, nowMs, ev.P95After, ev.P95Before, ws.Count, ws.Loss, ws.Attempts)
	if !ok {
		return pathstate.Event{}, false
	}
	ev.Kind, ev.Reason = kind, reason
	ev.P95Before = c.health.p95Before
	return ev, true
}

// Column is one resolution step of a cell's drill-down matrix.
type Column struct {
	T                  int64    // Unix ms, start of the step
	Counts             []uint64 // per bucket; nil when the step is empty
	Count              uint64
	P50, Mean          float64
	Attempts, Failures float64
	Loss               float64
	Jitter             float64 // ms; NaN without a pair of answers
	// Late is the number of the step's points that arrived after newer
	// points of their stream: a probe's backlog after an outage (late.go).
	Late uint32
}

// Drill is a cell's drill-down matrix: its columns' buckets are over Bounds.
type Drill struct {
	// Bounds are the upper bounds of the columns' buckets: NativeBounds
	// when every sample of the cell's history has native buckets (the
	// finer distribution), else the configured classic bounds.
	Bounds  []float64
	Columns []Column
}

// Drilldown returns the cell's view and its newest `n` columns (n <= 0: the
// whole history), oldest first, brought to time now.
func (a *Aggregator) Drilldown(id string, now time.Time, n int) (*View, Drill, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.byID[id]
	if !ok {
		return nil, Drill{}, false
	}
	cur := a.slotOf(now.UnixMilli())
	c.ring.moveTo(cur)
	r := c.ring
	if c.native != nil {
		c.native.moveTo(cur)
		hi := len(c.ring.wins) - 1
		if allNative(&c.native.wins[hi], c.ring.wins[hi].count()) {
			r = c.native
		}
	}
	native := r == c.native
	d := Drill{Bounds: a.bounds}
	if native {
		d.Bounds = NativeBounds
	}
	total := int(c.ring.n)
	if n <= 0 || n > total {
		n = total
	}
	d.Columns = make([]Column, n)
	for i := range d.Columns {
		s := cur - int64(n-1-i)
		col := Column{T: s * a.resMs, Counts: make([]uint64, r.nb)}
		sum, ctr := c.ring.slot(s, a.scratch)
		if native {
			sum, _ = r.slot(s, col.Counts)
		} else {
			copy(col.Counts, a.scratch)
		}
		att, fail := ctr[ctrAttempts], ctr[ctrFailures]
		for _, x := range col.Counts {
			col.Count += x
		}
		col.Attempts, col.Failures = float64(float32(att)), float64(float32(fail))
		col.P50 = round3(a.quantile(0.5, col.Counts, col.Count, native))
		col.Mean, col.Loss = math.NaN(), math.NaN()
		if col.Count > 0 {
			col.Mean = round3(sum / float64(col.Count))
		} else {
			col.Counts = nil
		}
		if att > 0 {
			col.Loss = round6(min(fail/att, 1))
		}
		col.Jitter = jitter(ctr)
		col.Late = c.lateIn(s)
		d.Columns[i] = col
	}
	return c.view, d, true
}

// CellCount returns the number of cells.
func (a *Aggregator) CellCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cells)
}
