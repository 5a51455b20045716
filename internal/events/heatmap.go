package events

import (
	"fmt"
	"math"
	"strconv"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Attribute names only path events carry.
const (
	AttrDstIslandGroup = "dst_island_group"
	AttrWindow         = "window"
	AttrSamples        = "samples"
	AttrLastSeen       = "last_seen"
)

// FromHeatmap turns one heatmap path state change into an event. The
// island groups come from gaz (nil: the shipped gazetteer), looked up by
// the cell's canonical cities; a city the gazetteer does not know leaves
// them empty. It reports false for a heatmap event kind it does not know.
//
// A heatmap cell aggregates every probe measuring that path, so path
// events carry no `probe`; for the same reason the loki exporter's
// per-probe rate limit never holds them back (the heatmap's own
// hysteresis is what keeps a flapping path quiet).
func FromHeatmap(e pathstate.Event, gaz *gazetteer.Gazetteer) (Event, bool) {
	if gaz == nil {
		gaz = gazetteer.Default()
	}
	c := e.Cell
	ev := Event{
		Time:        e.Time,
		SrcCity:     c.SrcCity,
		Carrier:     c.Carrier,
		DstCity:     c.DstCity,
		NetworkType: c.NetworkType,
		Reason:      e.Reason,
		Attrs:       map[string]any{},
	}
	if city, ok := gaz.City(c.SrcCity); ok {
		ev.IslandGroup = city.IslandGroup
	}
	if city, ok := gaz.City(c.DstCity); ok && city.IslandGroup != "" {
		ev.Attrs[AttrDstIslandGroup] = city.IslandGroup
	}
	path := fmt.Sprintf("%s → %s on %s %s", c.SrcCity, c.DstCity, c.Carrier, c.NetworkType)
	win := pathstate.WindowName(e.Window)
	numbers := func() {
		ev.Attrs[AttrP95Before] = e.P95Before
		ev.Attrs[AttrP95After] = e.P95After
		ev.Attrs[AttrLoss] = e.Loss // left out by ToLogs when NaN (no attempts)
		ev.Attrs[AttrSamples] = e.Samples
		if e.Window > 0 {
			ev.Attrs[AttrWindow] = win
		}
	}
	switch e.Kind {
	case pathstate.Degraded:
		ev.Kind, ev.Severity = KindPathDegraded, SeverityWarn
		numbers()
		ev.Body = fmt.Sprintf("%s degraded (%s): p95 %s → %s ms over %s, loss %s",
			path, e.Reason, ms(e.P95Before), ms(e.P95After), win, percent(e.Loss))
	case pathstate.Recovered:
		ev.Kind, ev.Severity = KindPathRecovered, SeverityInfo
		numbers()
		ev.Body = fmt.Sprintf("%s recovered: p95 %s ms over %s (baseline %s ms), loss %s",
			path, ms(e.P95After), win, ms(e.P95Before), percent(e.Loss))
	case pathstate.Stale:
		ev.Kind, ev.Severity = KindPathStale, SeverityWarn
		if !e.LastSeen.IsZero() {
			ev.Attrs[AttrLastSeen] = e.LastSeen
		}
		ev.Body = fmt.Sprintf("%s stale: %s (last data %s)", path, e.Reason, e.LastSeen.UTC().Format("15:04:05 UTC"))
	case pathstate.Back:
		ev.Kind, ev.Severity = KindPathBack, SeverityInfo
		if !e.LastSeen.IsZero() {
			ev.Attrs[AttrLastSeen] = e.LastSeen
		}
		ev.Body = fmt.Sprintf("%s back: data again after being stale", path)
	default:
		return Event{}, false
	}
	return ev, true
}

// ms renders a latency in ms to one decimal, "n/a" when not computable.
func ms(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// percent renders a ratio as a percentage to one decimal.
func percent(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) + "%"
}
