package rebuild

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// probeStream simulates one probe→target series as OTLP would deliver it
// (cumulative, with a start time) and as the tsdb exporter would store it.
type probeStream struct {
	cell     pathstate.CellKey
	probe    string
	target   string
	meanMs   float64
	rng      *rand.Rand
	start    time.Time
	counts   []uint64 // cumulative per bucket
	sum      float64
	attempts float64
	failures float64
	jitter   float64 // ms
	pairs    float64
}

func (s *probeStream) labels(name string, extra ...string) labels.Labels {
	kv := []string{
		model.MetricNameLabel, name, "job", "bantay-probe", "instance", s.probe,
		"src_city", s.cell.SrcCity, "dst_city", s.cell.DstCity, "carrier", s.cell.Carrier,
		"network_type", s.cell.NetworkType, "probe", s.probe, "target", s.target, "method", "tcp",
	}
	return labels.FromStrings(append(kv, extra...)...)
}

func (s *probeStream) attrs(extra ...aggregate.Label) []aggregate.Label {
	ls := []aggregate.Label{{Name: "carrier", Value: s.cell.Carrier}, {Name: "dst_city", Value: s.cell.DstCity}, {Name: "method", Value: "tcp"},
		{Name: "network_type", Value: s.cell.NetworkType}, {Name: "probe", Value: s.probe}, {Name: "src_city", Value: s.cell.SrcCity}, {Name: "target", Value: s.target}}
	ls = append(ls, extra...)
	slices.SortFunc(ls, func(a, b aggregate.Label) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return ls
}

// step records one probe interval ending at t, appends it to the TSDB and
// returns the live points for it.
func (s *probeStream) step(t *testing.T, app storage.Appender, at time.Time, reset bool) []*aggregate.Point {
	t.Helper()
	if reset {
		clear(s.counts)
		s.sum, s.attempts, s.failures, s.jitter, s.pairs = 0, 0, 0, 0, 0
		s.start = at.Add(-10 * time.Second)
	}
	n := 8 + s.rng.IntN(4)
	for range n {
		v := s.meanMs * (0.6 + 0.8*s.rng.Float64())
		s.counts[slices.IndexFunc(append(slices.Clone(aggregate.DefaultBounds), math.Inf(1)), func(b float64) bool { return v <= b })]++
		s.sum += v
	}
	s.attempts += float64(n + 1)
	s.failures++
	s.jitter += s.meanMs * 0.1 * float64(n-1)
	s.pairs += float64(n - 1)
	ms := at.UnixMilli()
	var cum uint64
	for i, c := range s.counts {
		cum += c
		le := "+Inf"
		if i < len(aggregate.DefaultBounds) {
			le = strconv.FormatFloat(aggregate.DefaultBounds[i], 'f', -1, 64)
		}
		if _, err := app.Append(0, s.labels(seriesBucket, "le", le), ms, float64(cum)); err != nil {
			t.Fatal(err)
		}
		// An http phase's series beside the total, all in the first
		// bucket: the rebuild must leave it out of the cell, as the
		// exporter does.
		if _, err := app.Append(0, s.labels(seriesBucket, "le", le, "phase", "connect"), ms, float64(s.attempts)); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []struct {
		name string
		v    float64
		ls   labels.Labels
	}{
		{seriesSum, s.sum, s.labels(seriesSum)},
		{seriesAttempts, s.attempts, s.labels(seriesAttempts)},
		{seriesFailures, s.failures, s.labels(seriesFailures, "reason", "timeout")},
		{seriesJitter, s.jitter, s.labels(seriesJitter)},
		{seriesPairs, s.pairs, s.labels(seriesPairs)},
		{seriesSum, 1, s.labels(seriesSum, "phase", "connect")},
	} {
		if _, err := app.Append(0, a.ls, ms, a.v); err != nil {
			t.Fatal(err)
		}
	}
	return []*aggregate.Point{
		{Kind: aggregate.KindLatency, Stream: aggregate.AppendStreamKey(nil, aggregate.KindLatency, s.probe, s.attrs()), Cell: s.cell, Start: s.start, Time: at,
			Bounds: aggregate.DefaultBounds, Counts: slices.Clone(s.counts), Sum: s.sum},
		{Kind: aggregate.KindAttempts, Stream: aggregate.AppendStreamKey(nil, aggregate.KindAttempts, s.probe, s.attrs()), Cell: s.cell, Start: s.start, Time: at, Value: s.attempts},
		{Kind: aggregate.KindFailures, Stream: aggregate.AppendStreamKey(nil, aggregate.KindFailures, s.probe, s.attrs(aggregate.Label{Name: "reason", Value: "timeout"})), Cell: s.cell, Start: s.start, Time: at, Value: s.failures},
		{Kind: aggregate.KindJitter, Stream: aggregate.AppendStreamKey(nil, aggregate.KindJitter, s.probe, s.attrs()), Cell: s.cell, Start: s.start, Time: at, Value: s.jitter},
		{Kind: aggregate.KindJitterPairs, Stream: aggregate.AppendStreamKey(nil, aggregate.KindJitterPairs, s.probe, s.attrs()), Cell: s.cell, Start: s.start, Time: at, Value: s.pairs},
	}
}

// t0 is aligned to a 15 s slot so tests can reason in whole slots.
var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// cells is an aggregation with the views its Collect calls reported, as
// the hub keeps them.
type cells struct {
	*aggregate.Aggregator
	views map[string]*aggregate.View
}

func newCells(t testing.TB) *cells {
	t.Helper()
	a, err := aggregate.New(aggregate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &cells{Aggregator: a, views: map[string]*aggregate.View{}}
}

// collect brings the views to now.
func (c *cells) collect(now time.Time) {
	changed, removed, _ := c.Collect(now)
	for _, ch := range changed {
		c.views[ch.View.ID] = ch.View
	}
	for _, id := range removed {
		delete(c.views, id)
	}
}

// TestRebuildFromTSDB fills a real TSDB and a live heatmap with the same 70
// minutes of data, rebuilds a second heatmap from the TSDB, and checks that
// (1) the rebuilt cells equal the live ones in every window, (2) the next
// live point continues the deltas, and (3) the cell's p50 equals what the
// Prometheus engine computes over the same window.
func TestRebuildFromTSDB(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	mnlDvo := pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}
	cebMnl := pathstate.CellKey{SrcCity: "Cebu", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g"}
	streams := []*probeStream{
		{cell: mnlDvo, probe: "mnl-01", target: "dvo-reflector:7", meanMs: 30},
		{cell: mnlDvo, probe: "mnl-02", target: "dvo-web:443", meanMs: 40},
		{cell: cebMnl, probe: "ceb-01", target: "mnl-web:443", meanMs: 12},
	}
	for i, s := range streams {
		s.rng = rand.New(rand.NewPCG(uint64(i), 7))
		s.start = t0.Add(-24 * time.Hour)
		s.counts = make([]uint64, len(aggregate.DefaultBounds)+1)
	}

	live := newCells(t)
	begin := t0.Add(3 * time.Second)
	const steps = 280 // 70 minutes at 15 s
	for i := range steps {
		at := begin.Add(time.Duration(i) * 15 * time.Second)
		app := db.Appender(context.Background())
		for j, s := range streams {
			// mnl-02 restarts half way through: a counter reset.
			for _, p := range s.step(t, app, at, j == 1 && i == 200) {
				live.Observe(p)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	now := begin.Add(steps*15*time.Second - 10*time.Second)

	rebuilt := newCells(t)
	res, err := Run(context.Background(), db, rebuilt.Aggregator, now)
	if err != nil {
		t.Fatal(err)
	}
	// Every step within the history (plus the margin for the first
	// delta), of 3 streams: 29 buckets, the sum, attempts, failures and
	// the two jitter counters; not the phase's series.
	inRange := 0
	for i := range steps {
		if at := begin.Add(time.Duration(i) * 15 * time.Second); !at.Before(res.From) && !at.After(res.To) {
			inRange++
		}
	}
	if want := inRange * 3 * 34; res.Samples != want || !res.To.Equal(now) || res.From != now.Add(-time.Hour-30*time.Second) {
		t.Errorf("read %d samples over %v..%v, want %d over the hour and 30 s before %v", res.Samples, res.From, res.To, want, now)
	}
	live.collect(now)
	rebuilt.collect(now)
	compareViews(t, live, rebuilt, 2)
	if j := rebuilt.views[cebMnl.ID()].Wins[0].Jitter; !(j > 0) {
		t.Errorf("rebuilt jitter %g, want the stored jitter counters' mean", j)
	}

	// The next live point after the restart continues each stream's deltas.
	next := now.Add(5 * time.Second)
	app := db.Appender(context.Background())
	for _, s := range streams {
		for _, p := range s.step(t, app, next, false) {
			live.Observe(p)
			rebuilt.Observe(p)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	live.collect(next.Add(time.Second))
	rebuilt.collect(next.Add(time.Second))
	compareViews(t, live, rebuilt, 2)

	// The same window asked of Prometheus: the difference of the cumulative
	// buckets between the end of the window and just before its start.
	nowMs := next.Add(time.Second).UnixMilli()
	v := rebuilt.views[cebMnl.ID()]
	cfg := rebuilt.Config()
	resMs := cfg.Resolution.Milliseconds()
	for wi, w := range cfg.Windows {
		from := (nowMs/resMs - int64(w/cfg.Resolution) + 1) * resMs
		// phase="": the totals, not the http phases beside them.
		sel := `network_latency_milliseconds_bucket{src_city="Cebu",dst_city="Manila",carrier="Smart",network_type="4g",phase=""}`
		q := fmt.Sprintf(`histogram_quantile(0.5, sum by (le) (%s - %s offset %dms))`, sel, sel, nowMs-from+1)
		got := promQL(t, db, q, time.UnixMilli(nowMs))
		if math.Abs(got-v.Wins[wi].P50) > 0.001 {
			t.Errorf("window %v: heatmap p50 %g, Prometheus %g (%s)", w, v.Wins[wi].P50, got, q)
		}
		if v.Wins[wi].Count == 0 {
			t.Errorf("window %v is empty", w)
		}
	}
}

func promQL(t *testing.T, q storage.Queryable, expr string, at time.Time) float64 {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewInstantQuery(context.Background(), q, nil, expr, at)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	r := qry.Exec(context.Background())
	if r.Err != nil {
		t.Fatalf("%s: %v", expr, r.Err)
	}
	vec, err := r.Vector()
	if err != nil || len(vec) != 1 {
		t.Fatalf("%s: want one sample, got %v (%v)", expr, r.Value, err)
	}
	return vec[0].F
}

func compareViews(t *testing.T, a, b *cells, wantCells int) {
	t.Helper()
	if len(a.views) != wantCells || len(b.views) != wantCells {
		t.Fatalf("cells: live %d, rebuilt %d, want %d", len(a.views), len(b.views), wantCells)
	}
	for id, va := range a.views {
		vb, ok := b.views[id]
		if !ok {
			t.Fatalf("rebuilt heatmap lacks cell %s", id)
		}
		for i := range va.Wins {
			if !va.Wins[i].Equal(vb.Wins[i]) {
				t.Errorf("cell %s window %d: live %+v, rebuilt %+v", id, i, va.Wins[i], vb.Wins[i])
			}
		}
		if !(va.BaseP50 == vb.BaseP50 || math.IsNaN(va.BaseP50) && math.IsNaN(vb.BaseP50)) || va.LastSeen != vb.LastSeen {
			t.Errorf("cell %s: baseline %g/%g last seen %d/%d", id, va.BaseP50, vb.BaseP50, va.LastSeen, vb.LastSeen)
		}
	}
}
