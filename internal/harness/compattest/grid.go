package compattest

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// Grid is the evaluation times of a range query: Start, Start+Step, …, up
// to and including End when Step divides End-Start. Instant queries are run
// at any of its times.
type Grid struct {
	Start, End time.Time
	Step       time.Duration
}

// Times returns the evaluation times, as the API computes them.
func (g Grid) Times() []time.Time {
	var out []time.Time
	for t := g.Start; !t.After(g.End); t = t.Add(g.Step) {
		out = append(out, t)
	}
	return out
}

// SampleTimes returns the distinct timestamps (Unix ms) of every raw sample
// the API at c holds in (to-span, to], with one range-selector query over
// all series.
func SampleTimes(ctx context.Context, c *promtest.Client, to time.Time, span time.Duration) (map[int64]bool, error) {
	expr := fmt.Sprintf(`{__name__=~".+"}[%dms]`, span.Milliseconds())
	res, err := c.Query(ctx, expr, to)
	if err != nil {
		return nil, fmt.Errorf("sample timestamps: %w", err)
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, fmt.Errorf("sample timestamps: %w", err)
	}
	out := map[int64]bool{}
	for _, s := range m {
		for _, p := range s.Values {
			out[int64(p.Timestamp)] = true
		}
	}
	return out, nil
}

// ChooseGrid finds a grid of the given span and step ending at end or up to
// tries milliseconds before it on which no evaluation time t has a sample
// at t-d for any d in deltas (the start of every range selector, offset
// and lookback window the queries use).
//
// Prometheus 3.0 made range selectors and the lookback window left-open:
// a sample exactly at t-d is outside [d] in Bantay (Prometheus 3.16's
// engine) but inside it in Prometheus 2.42. Evaluating where no sample sits
// on a window's start compares the engines where their semantics agree;
// docs/compatibility.md documents the difference itself.
func ChooseGrid(samples map[int64]bool, end time.Time, span, step time.Duration, deltas []time.Duration, tries int) (Grid, error) {
	end = end.Truncate(time.Millisecond)
	for i := range tries {
		g := Grid{Start: end.Add(-span), End: end, Step: step}
		if onBoundary(samples, g.Times(), deltas).IsZero() {
			return g, nil
		}
		end = end.Add(-time.Millisecond - time.Duration(i%7)*time.Millisecond)
	}
	return Grid{}, fmt.Errorf("no %v grid with step %v before %v (%d tries) keeps every window start off the %d sample timestamps",
		span, step, end, tries, len(samples))
}

// onBoundary returns the first evaluation time that has a sample on one of
// its window starts, or the zero time.
func onBoundary(samples map[int64]bool, evals []time.Time, deltas []time.Duration) time.Time {
	for _, t := range evals {
		for _, d := range deltas {
			if samples[int64(model.TimeFromUnixNano(t.Add(-d).UnixNano()))] {
				return t
			}
		}
	}
	return time.Time{}
}

// WindowStarts returns how far before an evaluation time each window of
// expr starts: offset+range for every range selector and offset+lookback
// for every instant selector. Subqueries and @ are refused: their windows
// depend on the evaluation time in ways this analysis does not follow.
func WindowStarts(expr string, lookback time.Duration) ([]time.Duration, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var out []time.Duration
	var walkErr error
	parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.SubqueryExpr:
			walkErr = fmt.Errorf("%q: subqueries are not supported", expr)
		case *parser.MatrixSelector:
			vs := n.VectorSelector.(*parser.VectorSelector)
			out = append(out, vs.OriginalOffset+n.Range)
		case *parser.VectorSelector:
			if n.Timestamp != nil || n.StartOrEnd != 0 {
				walkErr = fmt.Errorf("%q: @ is not supported", expr)
			}
			if len(path) > 0 {
				if _, inMatrix := path[len(path)-1].(*parser.MatrixSelector); inMatrix {
					return nil
				}
			}
			out = append(out, n.OriginalOffset+lookback)
		}
		return nil
	})
	return out, walkErr
}
