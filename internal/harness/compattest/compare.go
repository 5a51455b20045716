package compattest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// Tolerance says when two sample values count as equal: within Rel of the
// larger magnitude, or within Abs (for values that should be zero but come
// out as tiny residues of float arithmetic). NaN equals NaN and infinities
// must match exactly.
type Tolerance struct {
	Rel, Abs float64
	// BucketBounds, when set, are the bucket bounds of the classic
	// histograms a histogram_quantile answer is computed from. Then a value
	// a exactly on a bound also equals a value b inside the bucket above
	// that bound: Prometheus 2.49 and later (Bantay) ignore a bucket whose
	// count exceeds the one below it only by float rounding (relative 1e-12,
	// prometheus/prometheus#13153) and answer the bound; 2.42 interpolates
	// into that nearly empty bucket. a is Bantay's value, b the older
	// Prometheus's.
	BucketBounds []float64
}

// Strict is the tolerance for answers computed by the same algorithm on the
// same samples: only the last bits of float arithmetic may differ.
var Strict = Tolerance{Rel: 1e-9, Abs: 1e-12}

// Equal reports whether a and b are equal within the tolerance.
func (tol Tolerance) Equal(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return a == b
	}
	d := math.Abs(a - b)
	if d <= tol.Abs || d <= tol.Rel*math.Max(math.Abs(a), math.Abs(b)) {
		return true
	}
	return tol.roundedAwayBucket(a, b)
}

// roundedAwayBucket reports whether a sits on one of tol.BucketBounds and b
// lies in the bucket above it (see BucketBounds).
func (tol Tolerance) roundedAwayBucket(a, b float64) bool {
	for i, bound := range tol.BucketBounds {
		if !Strict.Equal(a, bound) {
			continue
		}
		if i+1 == len(tol.BucketBounds) {
			return false // the +Inf bucket answers the highest bound on both
		}
		next := tol.BucketBounds[i+1]
		return b > bound && (b <= next || Strict.Equal(b, next))
	}
	return false
}

// maxDiffs bounds how many differences one comparison reports; the first
// few say what is wrong, thousands would drown the test log.
const maxDiffs = 10

// DiffResults compares two query answers series by series (matched by
// their label sets, since result order is not part of the API contract for
// most expressions) and returns one line per difference, or nil when they
// agree: a different result type, a series only one side has, a different
// number of points, a different timestamp or a value outside tol. a and b
// are named by aName and bName in the lines.
func DiffResults(aName string, a promtest.Result, bName string, b promtest.Result, tol Tolerance) []string {
	return DiffResultsAt(aName, a, bName, b, func(model.Time) Tolerance { return tol })
}

// DiffResultsAt is DiffResults with a tolerance that depends on the
// evaluation time of each value.
func DiffResultsAt(aName string, a promtest.Result, bName string, b promtest.Result, tolAt func(model.Time) Tolerance) []string {
	var d differ
	at, bt := typeName(a.Value), typeName(b.Value)
	if at != bt {
		return []string{fmt.Sprintf("result type: %s %s, %s %s", aName, at, bName, bt)}
	}
	switch av := a.Value.(type) {
	case model.Vector:
		diffSeries(&d, aName, vectorByMetric(av), bName, vectorByMetric(b.Value.(model.Vector)), func(key string, x, y *model.Sample) {
			switch {
			case x.Timestamp != y.Timestamp:
				d.addf("%s: timestamp %s %v, %s %v", key, aName, x.Timestamp, bName, y.Timestamp)
			case !tolAt(x.Timestamp).Equal(float64(x.Value), float64(y.Value)):
				d.addf("%s: %s %v, %s %v", key, aName, x.Value, bName, y.Value)
			}
		})
	case model.Matrix:
		diffSeries(&d, aName, matrixByMetric(av), bName, matrixByMetric(b.Value.(model.Matrix)), func(key string, x, y *model.SampleStream) {
			diffPoints(&d, key, aName, x.Values, bName, y.Values, tolAt)
		})
	case *model.Scalar:
		bs := b.Value.(*model.Scalar)
		if av.Timestamp != bs.Timestamp || !tolAt(av.Timestamp).Equal(float64(av.Value), float64(bs.Value)) {
			d.addf("scalar: %s %v, %s %v", aName, av, bName, bs)
		}
	case *model.String:
		bs := b.Value.(*model.String)
		if *av != *bs {
			d.addf("string: %s %v, %s %v", aName, av, bName, bs)
		}
	}
	return d.lines()
}

// diffSeries reports the series only one side has and hands each series
// both sides have to both.
func diffSeries[V any](d *differ, aName string, as map[string]V, bName string, bs map[string]V, both func(key string, x, y V)) {
	for _, key := range unionKeys(as, bs) {
		x, inA := as[key]
		y, inB := bs[key]
		switch {
		case !inA:
			d.addf("series only in %s: %s", bName, key)
		case !inB:
			d.addf("series only in %s: %s", aName, key)
		default:
			both(key, x, y)
		}
	}
}

func diffPoints(d *differ, key, aName string, a []model.SamplePair, bName string, b []model.SamplePair, tolAt func(model.Time) Tolerance) {
	if len(a) != len(b) {
		d.addf("%s: %s has %d points, %s %d (%s %s, %s %s)", key, aName, len(a), bName, len(b),
			aName, spanOf(a), bName, spanOf(b))
		return
	}
	for i := range a {
		if a[i].Timestamp != b[i].Timestamp {
			d.addf("%s: point %d at %v in %s, at %v in %s", key, i, a[i].Timestamp, aName, b[i].Timestamp, bName)
			return
		}
		if !tolAt(a[i].Timestamp).Equal(float64(a[i].Value), float64(b[i].Value)) {
			d.addf("%s @%v: %s %v, %s %v", key, a[i].Timestamp, aName, a[i].Value, bName, b[i].Value)
			return
		}
	}
}

func spanOf(ps []model.SamplePair) string {
	if len(ps) == 0 {
		return "no points"
	}
	return fmt.Sprintf("%v..%v", ps[0].Timestamp, ps[len(ps)-1].Timestamp)
}

// DiffSets compares two lists as sets (label names, label values) and
// returns the elements only one side has, or nil.
func DiffSets(aName string, a []string, bName string, b []string) []string {
	var d differ
	inA, inB := setOf(a), setOf(b)
	for _, k := range unionKeys(inA, inB) {
		switch {
		case !inA[k]:
			d.addf("only in %s: %q", bName, k)
		case !inB[k]:
			d.addf("only in %s: %q", aName, k)
		}
	}
	return d.lines()
}

// DiffLabelSets compares two answers of /api/v1/series as sets of series.
func DiffLabelSets(aName string, a []model.LabelSet, bName string, b []model.LabelSet) []string {
	keys := func(ls []model.LabelSet) []string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = l.String()
		}
		return out
	}
	return DiffSets(aName, keys(a), bName, keys(b))
}

type differ struct {
	out     []string
	dropped int
}

func (d *differ) addf(format string, args ...any) {
	if len(d.out) == maxDiffs {
		d.dropped++
		return
	}
	d.out = append(d.out, fmt.Sprintf(format, args...))
}

func (d *differ) lines() []string {
	if d.dropped > 0 {
		return append(d.out, fmt.Sprintf("… and %d more differences", d.dropped))
	}
	return d.out
}

func typeName(v model.Value) string {
	if v == nil {
		return "empty"
	}
	return v.Type().String()
}

func vectorByMetric(v model.Vector) map[string]*model.Sample {
	m := make(map[string]*model.Sample, len(v))
	for _, s := range v {
		m[s.Metric.String()] = s
	}
	return m
}

func matrixByMetric(mx model.Matrix) map[string]*model.SampleStream {
	m := make(map[string]*model.SampleStream, len(mx))
	for _, s := range mx {
		m[s.Metric.String()] = s
	}
	return m
}

func setOf(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Summary is a short description of an answer for test logs: its type and
// series count, and the first series.
func Summary(r promtest.Result) string {
	s := fmt.Sprintf("%s with %d series", typeName(r.Value), r.Len())
	switch v := r.Value.(type) {
	case model.Vector:
		if len(v) > 0 {
			s += ", e.g. " + strings.TrimSpace(v[0].String())
		}
	case model.Matrix:
		if len(v) > 0 {
			s += fmt.Sprintf(", e.g. %s (%d points)", v[0].Metric, len(v[0].Values))
		}
	}
	return s
}
