package aggregate

import (
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// benchKeys returns n distinct cells: Manila to n destinations.
func benchKeys(n int) []pathstate.CellKey {
	keys := make([]pathstate.CellKey, 0, n)
	for i := range n {
		keys = append(keys, pathstate.CellKey{SrcCity: "Manila", DstCity: "Dst" + strconv.Itoa(i), Carrier: "Globe", NetworkType: "4g"})
	}
	return keys
}

// BenchmarkObserve measures one cumulative histogram point through delta
// tracking into its cell (1,000 streams, default bounds, each point moving
// its cell to a new slot): histograms=classic a classic point,
// histograms=exponential a native one without a classic twin (the most
// work: the native ring, then folded into the classic one). Compare with
// benchstat -col /histograms.
func BenchmarkObserve(b *testing.B) {
	b.Run("histograms=classic", func(b *testing.B) {
		benchObserve(b, KindLatency, func(p *Point, counts []uint64) { p.Bounds, p.Counts = DefaultBounds, counts }, len(DefaultBounds)+1)
	})
	b.Run("histograms=exponential", func(b *testing.B) {
		// Scale 5 from 2^(128/32) = 16 ms, 32 buckets: 16 to 32 ms.
		benchObserve(b, KindLatencyNative, func(p *Point, counts []uint64) {
			p.Exp = &Exponential{Scale: 5, Offset: 128, Counts: counts}
		}, 32)
	})
}

func benchObserve(b *testing.B, kind Kind, set func(*Point, []uint64), buckets int) {
	h, _ := testAggregator(b, func(c *Config) { c.Bounds = DefaultBounds })
	keys := benchKeys(1000)
	streams := make([][]byte, len(keys))
	points := make([]Point, len(keys))
	start := t0.Add(-10 * time.Second)
	for i, k := range keys {
		streams[i] = AppendStreamKey(nil, kind, "probe-"+strconv.Itoa(i), []Label{{Name: "target", Value: k.DstCity}})
		points[i] = Point{Kind: kind, Stream: streams[i], Cell: k, Start: start, Time: t0.Add(-30 * time.Second)}
		set(&points[i], make([]uint64, buckets))
		// Create the cells, their rings and the streams first (a base and
		// one increase): the loop measures steady state.
		h.Observe(&points[i])
		points[i].Time = t0.Add(-15 * time.Second)
		if p := &points[i]; p.Exp != nil {
			p.Exp.Counts[0]++
		} else {
			p.Counts[8]++
		}
		h.Observe(&points[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := i % len(keys)
		round := i / len(keys)
		p := &points[s]
		if p.Exp != nil {
			p.Exp.Counts[(round%5)*4] += 3
		} else {
			p.Counts[8+round%5] += 3
		}
		p.Time = t0.Add(time.Duration(round) * 15 * time.Second)
		p.Sum += 40
		h.Observe(p)
		i++
	}
}

// BenchmarkCollect10kCells measures one broadcast tick's aggregation work
// (slide windows, quantiles, change detection) over 10,000 cells, and
// reports the heap bytes per cell.
func BenchmarkCollect10kCells(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h, _ := testAggregator(b, func(c *Config) { c.Bounds = DefaultBounds })
	keys := benchKeys(10000)
	counts := make([][]uint64, len(keys))
	feed := func(at time.Time) {
		for i, k := range keys {
			if counts[i] == nil {
				counts[i] = make([]uint64, len(DefaultBounds)+1)
			}
			counts[i][9] += 5 // 20 ms
			h.Observe(&Point{Kind: KindLatency, Stream: []byte("h" + k.ID()), Cell: k, Start: t0.Add(-10 * time.Second), Time: at,
				Bounds: DefaultBounds, Counts: slices.Clone(counts[i]), Sum: 100 * float64(counts[i][9])})
		}
	}
	feed(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perCell := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(keys))
	now := t0
	for b.Loop() {
		now = now.Add(time.Second)
		if now.Sub(t0)%(15*time.Second) == 0 {
			// Keep the cells alive and changing like a probe would; not timed.
			b.StopTimer()
			feed(now)
			b.StartTimer()
		}
		h.Collect(now)
	}
	b.ReportMetric(perCell, "heap-bytes/cell")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(keys)), "ns/cell")
}
