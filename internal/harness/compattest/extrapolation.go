package compattest

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Loose is the tolerance where Prometheus 2.42 and 3.x legitimately
// extrapolate rate() and increase() differently (see ExtrapolationDiffers):
// the start of the extrapolated interval moves by less than 0.6 of the
// average sample spacing, out of a sampled interval of at least one
// spacing, so a single series' result differs by less than 60 %.
var Loose = Tolerance{Rel: 0.6, Abs: 1e-12}

// ValuesUnbounded is the tolerance for a histogram_quantile answer where the
// rate() under it extrapolates differently (Loose): each bucket's rate may
// move by up to 60 %, each by its own share, and the quantile, found by
// interpolating between cumulative bucket counts, can then land in another
// bucket altogether (CI saw a p99 of 74 ms against 217 ms). No relative
// bound holds, so only the series, timestamps and point counts (and
// NaN/Inf where they occur) are compared there.
var ValuesUnbounded = Tolerance{Rel: math.Inf(1), Abs: 1e-12}

// ExtrapolationDiffers reports whether Prometheus 2.42 and Prometheus 3.x
// extrapolate rate() or increase() (isCounter) of these samples of one
// series in the window (rangeStart, rangeEnd] (Unix ms) to different
// starts. Prometheus before 2.51 limited the extrapolation towards the
// counter's zero point before deciding whether the series starts inside the
// window; since prometheus/prometheus#13725 it decides first and limits
// afterwards. The two agree unless the counter's first value in the window
// is small against its increase, i.e. near where a counter series starts.
// delta() (not a counter) is extrapolated alike in both.
func ExtrapolationDiffers(samples []model.SamplePair, rangeStart, rangeEnd int64, isCounter bool) bool {
	n := len(samples)
	if n < 2 || !isCounter {
		return false
	}
	first, last := samples[0], samples[n-1]
	result := float64(last.Value - first.Value)
	for i := 1; i < n; i++ {
		if samples[i].Value < samples[i-1].Value {
			result += float64(samples[i-1].Value)
		}
	}
	toStart := float64(int64(first.Timestamp)-rangeStart) / 1000
	sampled := float64(last.Timestamp-first.Timestamp) / 1000
	avg := sampled / float64(n-1)
	threshold := 1.1 * avg
	toZero := math.Inf(1)
	if result > 0 && first.Value >= 0 {
		toZero = sampled * float64(first.Value) / result
	}

	// Prometheus 2.42: zero point first, then the threshold.
	old := min(toStart, toZero)
	if old >= threshold {
		old = avg / 2
	}
	// Prometheus 3.x: threshold first, then the zero point.
	cur := toStart
	if cur >= threshold {
		cur = avg / 2
	}
	cur = min(cur, toZero)
	return math.Abs(old-cur) > 1e-9
}

// extrapolatedWindow is a range selector read by rate() or increase().
type extrapolatedWindow struct {
	matchers      []*labels.Matcher
	rng, offset   time.Duration
	isCounter     bool
	functionName  string
	selectorShown string
}

// Extrapolation finds, for one expression, the evaluation times at which
// Prometheus 2.42 and 3.x legitimately disagree: some series read by a
// rate() or increase() of expr has samples in that function's window for
// which ExtrapolationDiffers. raw holds every raw sample of the store,
// back to the first one of each series.
type Extrapolation struct {
	windows []extrapolatedWindow
	raw     model.Matrix
}

// NewExtrapolation parses expr and finds its rate() and increase() windows.
func NewExtrapolation(expr string, raw model.Matrix) (*Extrapolation, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	x := &Extrapolation{raw: raw}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		call, ok := node.(*parser.Call)
		if !ok {
			return nil
		}
		switch call.Func.Name {
		case "rate", "increase", "delta":
		default:
			return nil
		}
		ms, ok := call.Args[0].(*parser.MatrixSelector)
		if !ok {
			return nil
		}
		vs := ms.VectorSelector.(*parser.VectorSelector)
		x.windows = append(x.windows, extrapolatedWindow{
			matchers: vs.LabelMatchers, rng: ms.Range, offset: vs.OriginalOffset,
			isCounter: call.Func.Name != "delta", functionName: call.Func.Name, selectorShown: ms.String(),
		})
		return nil
	})
	return x, nil
}

// DiffersAt tells whether the engines may disagree at evaluation time t,
// and names the first series and window that make them.
func (x *Extrapolation) DiffersAt(t time.Time) (bool, string) {
	for _, w := range x.windows {
		end := t.Add(-w.offset).UnixMilli()
		start := end - w.rng.Milliseconds()
		for _, s := range x.raw {
			if !matches(w.matchers, s.Metric) {
				continue
			}
			var in []model.SamplePair
			for _, p := range s.Values {
				if int64(p.Timestamp) > start && int64(p.Timestamp) <= end {
					in = append(in, p)
				}
			}
			if ExtrapolationDiffers(in, start, end, w.isCounter) {
				return true, fmt.Sprintf("%s(%s) of %s", w.functionName, w.selectorShown, s.Metric)
			}
		}
	}
	return false, ""
}

func matches(ms []*labels.Matcher, m model.Metric) bool {
	for _, lm := range ms {
		if !lm.Matches(string(m[model.LabelName(lm.Name)])) {
			return false
		}
	}
	return true
}
