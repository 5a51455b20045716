package otlpload

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/prober"
)

// PointsPerTarget is what one export carries per target: the latency
// histogram, the attempts counter and one failures counter per reason, all
// exported from the start as the probe agent does.
var PointsPerTarget = 2 + len(metricmodel.FailureReasons)

// Probe is one simulated probe: a registered identity with its uplinks and targets.
type Probe struct {
	ID, City string
	// Token is the probe's bearer token ("" for a peer without identity).
	Token   string
	Uplinks []Uplink
	Targets []Target
}

// Uplink is one carrier link of a probe.
type Uplink struct{ Carrier, NetworkType string }

// Target is one measured destination.
type Target struct {
	Name, DstCity, Method string
	// BaseMs is the path's typical round-trip time.
	BaseMs float64
}

// TokenHash is the SHA-256 (hex) of the probe's token, as the probeauth
// extension's token file holds it.
func (p Probe) TokenHash() string {
	sum := sha256.Sum256([]byte(p.Token))
	return hex.EncodeToString(sum[:])
}

// uplinkChoices are distinct carriers, so a probe's uplinks never share a
// carrier (the freshness query tells them apart by carrier alone).
var uplinkChoices = []Uplink{
	{"Globe", "5g"}, {"PLDT", "fiber"}, {"Smart", "4g"}, {"Converge", "fiber"}, {"DITO", "4g"},
}

// MaxUplinks is the most uplinks a simulated probe can have.
var MaxUplinks = len(uplinkChoices)

// NewFleet makes probes × uplinks × targets simulated probe uplinks: probes
// spread over the gazetteer's cities, each with its own random token, and
// targets in every city in turn, with round-trip times that grow with the
// distance between the cities and are larger on mobile uplinks.
func NewFleet(probes, targets, uplinks int) ([]Probe, error) {
	switch {
	case probes < 1:
		return nil, fmt.Errorf("probes: %d, want at least 1", probes)
	case targets < 1:
		return nil, fmt.Errorf("targets: %d, want at least 1", targets)
	case uplinks < 1 || uplinks > MaxUplinks:
		return nil, fmt.Errorf("uplinks: %d, want 1 to %d", uplinks, MaxUplinks)
	}
	cities := gazetteer.DefaultCities
	fleet := make([]Probe, probes)
	for i := range fleet {
		src := cities[i%len(cities)]
		p := Probe{ID: fmt.Sprintf("lg-%05d", i), City: src.Name, Token: rand.Text()}
		for u := range uplinks {
			p.Uplinks = append(p.Uplinks, uplinkChoices[(i+u)%len(uplinkChoices)])
		}
		for t := range targets {
			dst := cities[(i+t+1)%len(cities)]
			// ≈ 1 ms per 100 km of great-circle distance plus 2 ms of access,
			// the order of Philippine domestic paths.
			km := 111 * math.Hypot(src.Latitude-dst.Latitude, src.Longitude-dst.Longitude)
			method := []string{"udp", "http", "tcp", "icmp"}[t%4]
			p.Targets = append(p.Targets, Target{Name: fmt.Sprintf("%s-%s-%d", method, gazetteer.Key(dst.Name), t), DstCity: dst.Name, Method: method, BaseMs: 2 + km/100})
		}
		fleet[i] = p
	}
	return fleet, nil
}

// Stream is one probe uplink's OTLP export stream with its cumulative
// counts, as one of the probe agent's MeterProviders sends them. A stream
// is used by one goroutine at a time.
type Stream struct {
	Probe  *Probe
	Uplink Uplink
	start  pcommon.Timestamp
	last   time.Time
	rng    *mrand.Rand
	counts []targetCounts
}

type targetCounts struct {
	buckets  []uint64
	count    uint64
	sum      float64
	min, max float64
	attempts uint64
	timeouts uint64
}

// Streams returns one stream per probe uplink, all started at start.
func Streams(fleet []Probe, start time.Time) []*Stream {
	var out []*Stream
	for i := range fleet {
		p := &fleet[i]
		for _, u := range p.Uplinks {
			s := &Stream{Probe: p, Uplink: u, start: pcommon.NewTimestampFromTime(start), rng: mrand.New(mrand.NewPCG(uint64(len(out)), uint64(start.UnixNano()))), counts: make([]targetCounts, len(p.Targets))}
			for j := range s.counts {
				s.counts[j].buckets = make([]uint64, len(metricmodel.LatencyBounds)+1)
			}
			out = append(out, s)
		}
	}
	return out
}

// Points is the number of data points in each of the stream's exports.
func (s *Stream) Points() int { return len(s.Probe.Targets) * PointsPerTarget }

// networkFactor: mobile uplinks are slower than fixed ones.
var networkFactor = map[string]float64{"fiber": 1, "wifi": 1.2, "5g": 1.4, "4g": 2}

// Export takes one measurement of every target and returns the export
// request and its sample time: now, or 1 ms after the previous export when
// now is not later (the store keeps milliseconds, and two samples of a
// series with one timestamp would be duplicates).
func (s *Stream) Export(now time.Time) (pmetric.Metrics, time.Time) {
	now = now.Truncate(time.Millisecond)
	if !now.After(s.last) {
		now = s.last.Add(time.Millisecond)
	}
	s.last = now
	ts := pcommon.NewTimestampFromTime(now)

	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "bantay-probe")
	res.PutStr("service.instance.id", s.Probe.ID)
	res.PutStr("deployment.environment.name", "loadgen")
	res.PutStr("bantay.probe.city", s.Probe.City)
	res.PutStr("bantay.uplink.carrier", s.Uplink.Carrier)
	res.PutStr("bantay.uplink.network_type", s.Uplink.NetworkType)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metricmodel.ScopeName)
	ms := sm.Metrics()

	hist := newMetric(ms, metricmodel.Latency, "ms", "Latency of successful probes, from the monotonic clock.").SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	attSum := newCounter(ms, metricmodel.Attempts, "{attempt}", "Probe runs, successful or not.")
	failSum := newCounter(ms, metricmodel.Failures, "{failure}", "Failed probe runs, by reason.")

	factor := networkFactor[s.Uplink.NetworkType]
	for i, t := range s.Probe.Targets {
		c := &s.counts[i]
		c.attempts++
		// 0.5 % loss; otherwise a log-normal RTT around the path's base.
		if s.rng.Float64() < 0.005 {
			c.timeouts++
		} else {
			v := t.BaseMs * factor * math.Exp(0.25*s.rng.NormFloat64())
			if c.count == 0 || v < c.min {
				c.min = v
			}
			c.max = max(c.max, v)
			c.count++
			c.sum += v
			b := 0
			for b < len(metricmodel.LatencyBounds) && v > metricmodel.LatencyBounds[b] {
				b++
			}
			c.buckets[b]++
		}
		dp := hist.DataPoints().AppendEmpty()
		s.attrs(dp.Attributes(), t)
		dp.SetStartTimestamp(s.start)
		dp.SetTimestamp(ts)
		dp.ExplicitBounds().FromRaw(metricmodel.LatencyBounds)
		dp.BucketCounts().FromRaw(c.buckets)
		dp.SetCount(c.count)
		dp.SetSum(c.sum)
		if c.count > 0 { // the SDK records min and max, as here
			dp.SetMin(c.min)
			dp.SetMax(c.max)
		}

		a := attSum.DataPoints().AppendEmpty()
		s.attrs(a.Attributes(), t)
		a.SetStartTimestamp(s.start)
		a.SetTimestamp(ts)
		a.SetIntValue(int64(c.attempts))
		for _, r := range metricmodel.FailureReasons {
			f := failSum.DataPoints().AppendEmpty()
			s.attrs(f.Attributes(), t)
			f.Attributes().PutStr(metricmodel.AttrReason, r)
			f.SetStartTimestamp(s.start)
			f.SetTimestamp(ts)
			if r == string(prober.ReasonTimeout) {
				f.SetIntValue(int64(c.timeouts))
			} else {
				f.SetIntValue(0)
			}
		}
	}
	return md, now
}

// newMetric appends a metric with the probe agent's name, unit and description.
func newMetric(ms pmetric.MetricSlice, name, unit, description string) pmetric.Metric {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	m.SetDescription(description)
	return m
}

// newCounter appends a cumulative monotonic sum, as an SDK Int64Counter exports.
func newCounter(ms pmetric.MetricSlice, name, unit, description string) pmetric.Sum {
	sum := newMetric(ms, name, unit, description).SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	return sum
}

func (s *Stream) attrs(m pcommon.Map, t Target) {
	m.PutStr("target", t.Name)
	m.PutStr("dst_city", t.DstCity)
	m.PutStr("method", t.Method)
}
