// Package stalledstore is a store whose reads wait: tests hold a reader (the
// heatmap's rebuild) in the middle of its work, to show what happens beside
// it, and let it go by closing a channel.
package stalledstore

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// Queryable wraps a store: every Select of its queriers waits until Gate is
// closed (then reads the store) or the Select's context ends (then fails
// with the context's error).
type Queryable struct {
	storage.Queryable
	Gate <-chan struct{}
}

// Querier opens the wrapped store's querier, stalled.
func (s Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.Queryable.Querier(mint, maxt)
	return querier{Querier: q, gate: s.Gate}, err
}

type querier struct {
	storage.Querier
	gate <-chan struct{}
}

func (s querier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	select {
	case <-s.gate:
		return s.Querier.Select(ctx, sorted, hints, ms...)
	case <-ctx.Done():
		return storage.ErrSeriesSet(ctx.Err())
	}
}
