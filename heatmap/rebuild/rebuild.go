// Package rebuild refills the heatmap's aggregation from the Prometheus
// TSDB at start, so a collector restart does not blank the wall. The
// collector is ready meanwhile: Begin fences the store at the start, Read
// refills from it, and Hold keeps the live points that arrive meanwhile
// until Read is done (docs/heatmap.md, "Rebuild after a restart").
package rebuild

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Prometheus series the rebuild reads (docs/metric-model.md).
const (
	seriesBucket   = "network_latency_milliseconds_bucket"
	seriesSum      = "network_latency_milliseconds_sum"
	seriesAttempts = "bantay_probe_attempts_total"
	seriesFailures = "bantay_probe_failures_total"
	seriesJitter   = "bantay_probe_jitter_milliseconds_total"
	seriesPairs    = "bantay_probe_jitter_pairs_total"
)

// noPhase selects the latency series of the path, the totals: an http
// phase's series has a phase label (docs/metric-model.md).
var noPhase = labels.MustNewMatcher(labels.MatchEqual, metricmodel.AttrPhase, "")

type sample struct {
	t int64
	v float64
}

// histSeries is one latency histogram assembled from its _bucket series.
type histSeries struct {
	lset    labels.Labels // without __name__ and le
	les     []float64
	buckets [][]sample // per le
	sums    []sample
}

// Result says what a rebuild read.
type Result struct {
	// Samples is the number of samples read from the store.
	Samples int
	// From and To bound the time range read.
	From, To time.Time
}

// Run refills agg from the store as of now: Begin, then Read.
func Run(ctx context.Context, q storage.Queryable, agg *aggregate.Aggregator, now time.Time) (Result, error) {
	f, err := Begin(q, agg, now)
	if err != nil {
		return Result{}, err
	}
	return f.Read(ctx)
}

// Fenced is a rebuild whose view of the store was fixed when it began: Begin
// opened the querier, so samples appended in order after it (the live
// exports of a collector that is already ready) are not read, and its time
// range ends at the instant it began. Read does the work, once.
type Fenced struct {
	querier storage.Querier
	agg     *aggregate.Aggregator
	res     Result
}

// Begin opens the store as of now for a rebuild of agg: the last History
// (plus a little before, for the first delta) up to now. It is cheap; Read
// is the long part. Points that arrive while Read runs must be kept from
// agg until it returns (Hold), then applied: a stream that already has a
// newer live point ignores older stored samples as out of order.
func Begin(q storage.Queryable, agg *aggregate.Aggregator, now time.Time) (*Fenced, error) {
	cfg := agg.Config()
	margin := 2 * max(cfg.ProbeInterval, cfg.Resolution)
	res := Result{From: now.Add(-cfg.History - margin), To: now}
	querier, err := q.Querier(res.From.UnixMilli(), res.To.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("heatmap rebuild: open querier: %w", err)
	}
	return &Fenced{querier: querier, agg: agg, res: res}, nil
}

// Read refills the aggregation: it reads network_latency_milliseconds
// _bucket and _sum and the native network_latency_native_milliseconds (the
// totals: no http phases), bantay_probe_attempts_total,
// bantay_probe_failures_total and the jitter counters in the fenced range and
// feeds them through the same delta logic as live data (Observe), so the
// next live point continues each stream's deltas where the store left off.
// It closes the querier.
func (f *Fenced) Read(ctx context.Context) (Result, error) {
	querier, agg, res := f.querier, f.agg, f.res
	defer querier.Close()

	hists := map[string]*histSeries{}
	var sums []struct {
		lset    labels.Labels
		samples []sample
	}
	read := func(name string, fn func(lset labels.Labels, s []sample) error, extra ...*labels.Matcher) error {
		ss := querier.Select(ctx, false, nil, append(extra, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name))...)
		for ss.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			series := ss.At()
			var samples []sample
			it := series.Iterator(nil)
			for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
				if typ != chunkenc.ValFloat {
					continue
				}
				t, v := it.At()
				if value.IsStaleNaN(v) || math.IsNaN(v) {
					continue
				}
				samples = append(samples, sample{t, v})
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("read %s%s: %w", name, series.Labels(), err)
			}
			res.Samples += len(samples)
			if err := fn(series.Labels(), samples); err != nil {
				return err
			}
		}
		if err := ss.Err(); err != nil {
			return fmt.Errorf("select %s: %w", name, err)
		}
		return nil
	}

	err := read(seriesBucket, func(lset labels.Labels, s []sample) error {
		le, err := strconv.ParseFloat(lset.Get(labels.BucketLabel), 64)
		if err != nil {
			return nil // not a valid bucket series; nothing to rebuild from it
		}
		base := labels.NewBuilder(lset).Del(model.MetricNameLabel, labels.BucketLabel).Labels()
		k := base.String()
		hs, ok := hists[k]
		if !ok {
			hs = &histSeries{lset: base}
			hists[k] = hs
		}
		hs.les = append(hs.les, le)
		hs.buckets = append(hs.buckets, s)
		return nil
	}, noPhase)
	if err == nil {
		err = read(seriesSum, func(lset labels.Labels, s []sample) error {
			sums = append(sums, struct {
				lset    labels.Labels
				samples []sample
			}{labels.NewBuilder(lset).Del(model.MetricNameLabel).Labels(), s})
			return nil
		}, noPhase)
	}
	for _, s := range sums {
		if hs, ok := hists[s.lset.String()]; ok {
			hs.sums = s.samples
		}
	}
	var key []byte
	if err == nil {
		for _, hs := range hists {
			key = rebuildHistogram(agg, hs, key)
		}
		var n int
		n, err = readNative(ctx, querier, agg, func(lset labels.Labels) bool { return hists[lset.String()] != nil })
		res.Samples += n
	}
	if err == nil {
		err = read(seriesAttempts, func(lset labels.Labels, s []sample) error {
			key = rebuildCounter(agg, aggregate.KindAttempts, lset, s, key)
			return nil
		})
	}
	for _, c := range []struct {
		series string
		kind   aggregate.Kind
	}{{seriesFailures, aggregate.KindFailures}, {seriesJitter, aggregate.KindJitter}, {seriesPairs, aggregate.KindJitterPairs}} {
		if err != nil {
			break
		}
		err = read(c.series, func(lset labels.Labels, s []sample) error {
			key = rebuildCounter(agg, c.kind, lset, s, key)
			return nil
		})
	}
	if err != nil {
		return res, fmt.Errorf("heatmap rebuild: %w", err)
	}
	return res, nil
}

// streamIdentity returns the cell key and stream key of a stored series.
func streamIdentity(kind aggregate.Kind, lset labels.Labels, key []byte) (pathstate.CellKey, []byte) {
	ck := pathstate.CellKey{
		SrcCity: lset.Get("src_city"), DstCity: lset.Get("dst_city"),
		Carrier: lset.Get("carrier"), NetworkType: lset.Get("network_type"),
	}
	var ls []aggregate.Label
	lset.Range(func(l labels.Label) { ls = append(ls, aggregate.Label{Name: l.Name, Value: l.Value}) })
	return ck, aggregate.AppendStreamKey(key[:0], kind, lset.Get("instance"), ls)
}

func rebuildCounter(agg *aggregate.Aggregator, kind aggregate.Kind, lset labels.Labels, samples []sample, key []byte) []byte {
	ck, key := streamIdentity(kind, lset, key)
	p := aggregate.Point{Kind: kind, Stream: key, Cell: ck}
	for _, s := range samples {
		p.Time, p.Value = time.UnixMilli(s.t), s.v
		agg.Observe(&p)
	}
	return key
}

// rebuildHistogram turns the per-le cumulative series back into histogram
// points: at each timestamp where every bucket has a sample, the bucket
// counts are the differences of consecutive le values.
func rebuildHistogram(agg *aggregate.Aggregator, hs *histSeries, key []byte) []byte {
	ck, key := streamIdentity(aggregate.KindLatency, hs.lset, key)
	order := make([]int, len(hs.les))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(hs.les[a], hs.les[b]) })
	if len(order) < 2 || !math.IsInf(hs.les[order[len(order)-1]], 1) {
		return key // no +Inf bucket: not a usable histogram
	}
	bounds := make([]float64, 0, len(order)-1)
	for _, i := range order[:len(order)-1] {
		bounds = append(bounds, hs.les[i])
	}
	// Walk the +Inf series' timestamps; look the others up by timestamp.
	inf := hs.buckets[order[len(order)-1]]
	idx := make([]int, len(order))
	sumIdx := 0
	counts := make([]uint64, len(order))
	p := aggregate.Point{Kind: aggregate.KindLatency, Stream: key, Cell: ck, Bounds: bounds, Counts: counts}
	for _, ref := range inf {
		complete := true
		var prev float64
		for j, bi := range order {
			s := hs.buckets[bi]
			for idx[j] < len(s) && s[idx[j]].t < ref.t {
				idx[j]++
			}
			if idx[j] >= len(s) || s[idx[j]].t != ref.t {
				complete = false
				break
			}
			v := s[idx[j]].v
			if v < prev {
				v = prev // non-monotonic le values (torn write): clamp like Prometheus
			}
			counts[j] = uint64(math.Round(v - prev))
			prev = v
		}
		if !complete {
			continue
		}
		for sumIdx < len(hs.sums) && hs.sums[sumIdx].t < ref.t {
			sumIdx++
		}
		p.Sum = 0
		if sumIdx < len(hs.sums) && hs.sums[sumIdx].t == ref.t {
			p.Sum = hs.sums[sumIdx].v
		}
		p.Time = time.UnixMilli(ref.t)
		agg.Observe(&p)
	}
	return key
}
