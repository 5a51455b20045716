package bantayeventsreceiver

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// testExtension is a small real extension holding a real heatmap and a
// real bus, as Bantay's bantay extension does.
// newTestHeatmap is a heatmap, not yet started, tuned so that a test can drive a path
// through its states in seconds: 1 s resolution, a 5 s events window
// against a 60 s baseline, no hold time, stale after two 1 s intervals.
func newTestHeatmap(t *testing.T, mutate ...func(*heatmap.Config)) *heatmap.Heatmap {
	t.Helper()
	cfg := heatmap.Config{
		Aggregation: aggregate.Config{
			Resolution:    time.Second,
			History:       time.Minute,
			Windows:       []time.Duration{5 * time.Second, time.Minute},
			ProbeInterval: time.Second,
			StaleAfter:    2,
			Events: aggregate.EventsConfig{
				Window: 5 * time.Second,
				Hold:   time.Millisecond,
			},
		},
		Hub: hub.Config{DefaultWindow: 5 * time.Second, BroadcastInterval: 20 * time.Millisecond},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	hm, err := heatmap.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hm.Close() })
	return hm
}

// startHeatmap begins the heatmap's broadcasts (and so its judgements).
// Tests feed a path's history before: a broadcast between two of its
// points would see a gap in the data and call the path stale.
func startHeatmap(t *testing.T, hm *heatmap.Heatmap) {
	t.Helper()
	if err := hm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// path feeds one probe's cumulative latency histogram for one cell
// through the heatmap's Observe, as the heatmap exporter does.
type path struct {
	hm     *heatmap.Heatmap
	cell   pathstate.CellKey
	stream []byte
	start  time.Time
	counts []uint64
	sum    float64
	last   time.Time
}

func newPath(hm *heatmap.Heatmap, probe string, cell pathstate.CellKey, start time.Time) *path {
	labels := []aggregate.Label{
		{Name: "carrier", Value: cell.Carrier}, {Name: "dst_city", Value: cell.DstCity},
		{Name: "network_type", Value: cell.NetworkType}, {Name: "probe", Value: probe},
		{Name: "src_city", Value: cell.SrcCity},
	}
	return &path{
		hm: hm, cell: cell, start: start,
		stream: aggregate.AppendStreamKey(nil, aggregate.KindLatency, probe, labels),
		counts: make([]uint64, len(aggregate.DefaultBounds)+1),
	}
}

// observe adds n samples of ms milliseconds at time at.
func (p *path) observe(at time.Time, n uint64, ms float64) {
	p.counts[sort.SearchFloat64s(aggregate.DefaultBounds, ms)] += n
	p.sum += float64(n) * ms
	p.last = at
	p.hm.Observe(&aggregate.Point{
		Kind: aggregate.KindLatency, Stream: p.stream, Cell: p.cell, Start: p.start, Time: at,
		Bounds: aggregate.DefaultBounds, Counts: append([]uint64(nil), p.counts...), Sum: p.sum,
	})
}

// degrade gives the path a 45 s baseline of 20 ms and then a 5 s spike to
// 200 ms ending now: the heatmap calls it degraded (latency) on its next
// broadcasts.
func (p *path) degrade(now time.Time) {
	for i := 50; i >= 6; i-- {
		p.observe(now.Add(-time.Duration(i)*time.Second), 100, 19)
	}
	for i := 4; i >= 0; i-- {
		p.observe(now.Add(-time.Duration(i)*time.Second), 20, 190)
	}
}

// recover floods the events window with fast samples.
func (p *path) recover(now time.Time) {
	p.observe(now, 10000, 19)
}
