package rebuild

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// gatedQueryable is the store with a slow rebuild: the first series the
// rebuild reads waits until gate is closed, so the test decides what
// happens while the rebuild reads.
type gatedQueryable struct {
	storage.Queryable
	gate    chan struct{}
	reading chan struct{} // closed when the rebuild first waits
}

func (g *gatedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := g.Queryable.Querier(mint, maxt)
	return &gatedQuerier{Querier: q, g: g}, err
}

type gatedQuerier struct {
	storage.Querier
	g *gatedQueryable
}

func (q *gatedQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &gatedSeriesSet{SeriesSet: q.Querier.Select(ctx, sorted, hints, ms...), g: q.g}
}

type gatedSeriesSet struct {
	storage.SeriesSet
	g *gatedQueryable
}

func (s *gatedSeriesSet) Next() bool {
	select {
	case <-s.g.reading:
	default:
		close(s.g.reading)
	}
	<-s.g.gate
	return s.SeriesSet.Next()
}

func (s *gatedSeriesSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

// fleet is three probe streams over two cells with 40 minutes of history
// in db, the last at the returned time.
func fleet(t *testing.T, db *tsdb.DB) ([]*probeStream, time.Time) {
	t.Helper()
	mnlDvo := pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}
	cebMnl := pathstate.CellKey{SrcCity: "Cebu", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g"}
	streams := []*probeStream{
		{cell: mnlDvo, probe: "mnl-01", target: "dvo-reflector:7", meanMs: 30},
		{cell: mnlDvo, probe: "mnl-02", target: "dvo-web:443", meanMs: 40},
		{cell: cebMnl, probe: "ceb-01", target: "mnl-web:443", meanMs: 12},
	}
	for i, s := range streams {
		s.rng = rand.New(rand.NewPCG(uint64(i), 11))
		s.start = t0.Add(-24 * time.Hour)
		s.counts = make([]uint64, len(aggregate.DefaultBounds)+1)
	}
	var last time.Time
	for i := range 160 { // 40 minutes at 15 s
		last = t0.Add(3*time.Second + time.Duration(i)*15*time.Second)
		app := db.Appender(context.Background())
		for _, s := range streams {
			s.step(t, app, last, false)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return streams, last
}

// measure records one probe interval of every stream ending at `at`, as
// the probes measure it, and returns the points to deliver later.
func measure(t *testing.T, db *tsdb.DB, streams []*probeStream, at time.Time) (pts []*aggregate.Point, stored func()) {
	t.Helper()
	// The values advance now; the samples reach the store when the
	// collector receives the export (stored), as the tsdb exporter
	// appends them.
	app := db.Appender(context.Background())
	for _, s := range streams {
		pts = append(pts, s.step(t, app, at, false)...)
	}
	return pts, func() {
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRebuildBesideLiveData is the restart of a collector that is ready
// before its heatmap has rebuilt itself: the store is fenced, the rebuild
// is held back by a slow store while live exports are stored and reach the
// heatmap, then the rebuild reads. The cells must equal those of a rebuild
// that ran to the end before the first live point, followed by the same
// live points: none lost, none counted twice. The live points are an
// export measured before the restart and delivered after it, fresh exports
// after the fence, and a probe's backlog (queue.dir) delivered after its
// fresh data, which the store takes out of order.
func TestRebuildBesideLiveData(t *testing.T) {
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = (30 * time.Minute).Milliseconds()
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	streams, last := fleet(t, db)
	fence := last.Add(70 * time.Second) // the collector was down for a minute

	// What a rebuild before the collector was ready would have made.
	reference := newCells(t)
	if _, err := Run(context.Background(), db, reference.Aggregator, fence); err != nil {
		t.Fatal(err)
	}

	// The collector's start: hold, fence, then the slow read.
	cells := newCells(t)
	hold := NewHold(Config{})
	hold.Begin()
	gated := &gatedQueryable{Queryable: db, gate: make(chan struct{}), reading: make(chan struct{})}
	fenced, err := Begin(gated, cells.Aggregator, fence)
	if err != nil {
		t.Fatal(err)
	}
	type readResult struct {
		res Result
		err error
	}
	read := make(chan readResult, 1)
	go func() {
		res, err := fenced.Read(context.Background())
		read <- readResult{res, err}
	}()
	<-gated.reading

	// What the probes measured while the collector was down (their queue),
	// then fresh exports, in the order the collector receives them: the
	// first fresh export, the queue oldest first, the next fresh ones.
	type export struct {
		pts   []*aggregate.Point
		store func()
	}
	var queued, later []export
	for i := range 4 {
		pts, store := measure(t, db, streams, last.Add(time.Duration(15*(i+1))*time.Second))
		queued = append(queued, export{pts, store})
	}
	for i := range 5 {
		pts, store := measure(t, db, streams, fence.Add(time.Duration(5+15*i)*time.Second))
		later = append(later, export{pts, store})
	}
	deliveries := slices.Concat(later[:1], queued, later[1:])
	for _, d := range deliveries {
		d.store() // the tsdb exporter's append, before the heatmap sees it
		for _, p := range d.pts {
			if !hold.Offer(p) {
				t.Fatal("a live point reached the aggregation during the rebuild")
			}
			reference.Observe(p)
		}
	}
	close(gated.gate)
	r := <-read
	if r.err != nil {
		t.Fatal(r.err)
	}
	replayed, dropped := hold.Release(cells.Observe)
	if want := len(deliveries) * len(deliveries[0].pts); replayed != want || dropped != 0 {
		t.Errorf("replayed %d, dropped %d live points, want %d and 0", replayed, dropped, want)
	}
	if hold.Active() || hold.Offer(deliveries[0].pts[0]) {
		t.Error("the hold still takes points after its release")
	}
	if got := testutil.ToFloat64(hold.rebuilding); got != 0 {
		t.Errorf("bantay_heatmap_rebuilding %g after the release", got)
	}

	now := fence.Add(75 * time.Second)
	reference.collect(now)
	cells.collect(now)
	compareViews(t, reference, cells, 2)
	compareColumns(t, reference.Aggregator, cells.Aggregator, now)
}

// compareColumns checks that every cell's drill-down columns hold the same
// counts in both aggregations (Late aside: see TestRebuildBesideLiveData).
func compareColumns(t *testing.T, a, b *aggregate.Aggregator, now time.Time) {
	t.Helper()
	for _, id := range []string{
		pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}.ID(),
		pathstate.CellKey{SrcCity: "Cebu", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g"}.ID(),
	} {
		_, da, okA := a.Drilldown(id, now, 0)
		_, db, okB := b.Drilldown(id, now, 0)
		ca, cb := da.Columns, db.Columns
		if !okA || !okB || len(ca) != len(cb) || !slices.Equal(da.Bounds, db.Bounds) {
			t.Fatalf("cell %s: drill-down %v/%v, %d/%d columns", id, okA, okB, len(ca), len(cb))
		}
		filled := 0
		for i := range ca {
			x, y := ca[i], cb[i]
			if x.T != y.T || !slices.Equal(x.Counts, y.Counts) || x.Attempts != y.Attempts || x.Failures != y.Failures ||
				!(x.Jitter == y.Jitter || math.IsNaN(x.Jitter) && math.IsNaN(y.Jitter)) {
				t.Errorf("cell %s column %d (%d): reference %+v, rebuilt beside live data %+v", id, i, x.T, x, y)
			}
			if x.Count > 0 {
				filled++
			}
		}
		if filled < 150 {
			t.Errorf("cell %s: only %d columns hold data", id, filled)
		}
	}
}

// TestHoldIsBounded: beyond rebuild_hold_points live points are dropped
// and counted (and taken, so the caller does not apply them ahead of the
// held ones), and Release applies the rest in the order they came.
func TestHoldIsBounded(t *testing.T) {
	hold := NewHold(Config{HoldPoints: 2})
	p := &aggregate.Point{Kind: aggregate.KindAttempts, Stream: []byte("s"), Value: 1}
	if hold.Offer(p) {
		t.Fatal("an inactive hold took a point")
	}
	hold.Begin()
	for v := range 4 {
		p.Value, p.Stream[0] = float64(v), byte('a'+v)
		if !hold.Offer(p) {
			t.Fatalf("point %d not taken", v)
		}
	}
	var got []string
	replayed, dropped := hold.Release(func(p *aggregate.Point) { got = append(got, string(p.Stream)) })
	if replayed != 2 || dropped != 2 || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("replayed %d %v, dropped %d; want a, b and 2 dropped (copies, not the caller's reused point)", replayed, got, dropped)
	}
	for result, want := range map[string]float64{liveHeld: 2, liveDropped: 2, liveReplayed: 2} {
		if n := testutil.ToFloat64(hold.live.WithLabelValues(result)); n != want {
			t.Errorf("bantay_heatmap_rebuild_live_points_total{result=%q} = %g, want %g", result, n, want)
		}
	}
	if err := (Config{HoldPoints: -1}).Validate(); err == nil {
		t.Error("a negative rebuild_hold_points passed validation")
	}
}
