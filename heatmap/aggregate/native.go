package aggregate

import "math"

// Native (base-2 exponential) histograms: network.latency.native, stored by
// Prometheus's OTLP translator as the native histogram
// network_latency_native_milliseconds (docs/metric-model.md).
//
// A cell cannot keep each source's own layout: a stream's scale falls as its
// range grows, and a cell merges streams of several probes and targets. So a
// cell that receives native points keeps a second ring in one fixed layout,
// scale NativeScale over NativeBuckets buckets — the probe's own budget
// (metricmodel.LatencyNativeMaxBuckets, 160) at the scale at which that budget
// spans the probe's whole range (docs/decisions.md). Every source bucket of
// scale NativeScale or finer lies inside exactly one of its buckets, so
// mapping a point onto it only adds counts: its cumulative counts stay
// cumulative, and the stream logic (deltas, resets, backfill) is the classic
// one unchanged.

const (
	// NativeScale is the scale of a cell's native ring: bucket boundaries
	// 2^(k/8), each bucket 9 % wide.
	NativeScale = 3
	// NativeBuckets is the number of finite native buckets of a cell.
	NativeBuckets = 160
	// nativeFirstIndex is the OTel bucket index of the first finite bucket:
	// (2^(-32/8), 2^(-31/8)] = (0.0625, 0.068] ms. Everything at or below
	// its upper bound (zero bucket included) is counted in it; everything
	// above the last bound, 2^(128/8) = 65,536 ms, in the +Inf bucket.
	nativeFirstIndex = -32
)

// NativeBounds are the upper bounds (ms) of a cell's native buckets: 2^(k/8)
// for k = -31 … 128. Bucket 0 is (0, NativeBounds[0]], bucket i
// (NativeBounds[i-1], NativeBounds[i]], the last one (NativeBounds[159], +Inf).
var NativeBounds = func() []float64 {
	b := make([]float64, NativeBuckets)
	for i := range b {
		b[i] = math.Exp2(float64(nativeFirstIndex+1+i) / (1 << NativeScale))
	}
	return b
}()

// Exponential is a base-2 exponential histogram point's buckets as OTLP has
// them: bucket index i covers (2^(i·2^-Scale), 2^((i+1)·2^-Scale)]. Only
// positive buckets: latencies are not negative.
type Exponential struct {
	Scale     int32
	ZeroCount uint64
	// Offset is the index of Counts[0].
	Offset int32
	Counts []uint64
}

// foldNative maps e onto the cell's native layout (dst has NativeBuckets+1
// counts). A source bucket of a scale at least NativeScale lies inside one
// cell bucket; of a coarser scale (a stream whose range outgrew 160 buckets
// at scale 3, i.e. more than 2^20 between its extremes) it goes to the cell
// bucket that holds its upper bound, as fold does for explicit bounds. False
// for a scale no SDK produces (OTLP allows -10..20).
func foldNative(dst []uint64, e *Exponential) bool {
	if e.Scale < -10 || e.Scale > 20 {
		return false
	}
	clear(dst)
	dst[0] = e.ZeroCount
	last := int64(NativeBuckets) // the +Inf bucket
	for j, c := range e.Counts {
		if c == 0 {
			continue
		}
		i := int64(e.Offset) + int64(j)
		var k int64 // cell index of the bucket holding (…, 2^((i+1)·2^-Scale)]
		if shift := int64(e.Scale) - NativeScale; shift >= 0 {
			k = i >> shift // floor: the enclosing bucket at the coarser scale
		} else {
			// Upper bound index (i+1)<<-shift at scale 3, bucket below it.
			k = (i+1)<<(-shift) - 1
		}
		k -= nativeFirstIndex
		dst[min(max(k, 0), last)] += c
	}
	return true
}

// nativeQuantile is Prometheus's histogram_quantile for a native histogram
// (promql.HistogramQuantile, v0.316), over the cell's native layout: the
// rank q·N is located in the cumulative counts and interpolated inside its
// bucket on a logarithmic scale (exponential boundaries are evenly spaced
// there), linearly in the first bucket, which holds the zero bucket; a rank
// in the +Inf bucket returns the highest finite bound. NaN when empty.
//
// Prometheus evaluates the same rank on the source's own scale, whose
// buckets nest inside these: both results lie in the same bucket of this
// layout, so they differ by at most its width, a factor of 2^(1/8).
func nativeQuantile(q float64, counts []uint64, total uint64) float64 {
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum, prev uint64
	b := NativeBuckets
	for i := range NativeBuckets {
		prev = cum
		cum += counts[i]
		if counts[i] > 0 && float64(cum) >= rank {
			b = i
			break
		}
	}
	if b == NativeBuckets {
		return NativeBounds[NativeBuckets-1]
	}
	fraction := (rank - float64(prev)) / float64(cum-prev)
	if b == 0 {
		return NativeBounds[0] * fraction
	}
	lo, hi := math.Log2(NativeBounds[b-1]), math.Log2(NativeBounds[b])
	return math.Exp2(lo + (hi-lo)*fraction)
}
