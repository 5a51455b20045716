package aggregate

import "math"

// bucketQuantile returns the q-quantile of a histogram given as per-bucket
// counts (not cumulative) over upper bounds, the last bucket being +Inf.
//
// It is Prometheus's histogram_quantile for classic histograms
// (promql.BucketQuantile) step for step, so the wall shows the same number
// as the Prometheus API for the same data: the rank q·N is located in the
// cumulative counts; inside the bucket the observations are assumed to be
// spread evenly, so the result is interpolated linearly between the
// bucket's lower bound (0 for the first bucket) and its upper bound; a rank
// that falls into the +Inf bucket returns the highest finite bound. NaN
// when the histogram is empty.
func bucketQuantile(q float64, bounds []float64, counts []uint64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	return bucketQuantileN(q, bounds, counts, total)
}

// bucketQuantileN is bucketQuantile with the total count already known.
func bucketQuantileN(q float64, bounds []float64, counts []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	// sort.Search over the finite buckets for the first cumulative count >= rank.
	var cum, prev uint64
	b := len(bounds)
	for i := range bounds {
		prev = cum
		cum += counts[i]
		if float64(cum) >= rank {
			b = i
			break
		}
	}
	if b == len(bounds) {
		return bounds[len(bounds)-1]
	}
	var start float64
	if b > 0 {
		start = bounds[b-1]
	}
	end := bounds[b]
	count := float64(cum - prev)
	return start + (end-start)*((rank-float64(prev))/count)
}

// round3 rounds to three decimals (1 µs for latencies): finer digits are
// noise that would only make every cell look changed on every tick.
func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	return math.Round(v*1000) / 1000
}

// round6 rounds ratios (loss, trend) to six decimals.
func round6(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	return math.Round(v*1e6) / 1e6
}
