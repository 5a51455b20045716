package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// operatorGazetteer is the shipped gazetteer plus what an operator adds in
// citytag's config: a city Bantay does not ship and a carrier.
func operatorGazetteer(t testing.TB) *gazetteer.Gazetteer {
	t.Helper()
	g, err := gazetteer.Extend(
		[]gazetteer.City{{Name: "Tuguegarao", Region: "Cagayan Valley", IslandGroup: gazetteer.Luzon,
			Latitude: 17.6132, Longitude: 121.727, Aliases: []string{"Tuguegarao City", "TUG"}}},
		[]gazetteer.Term{{Name: "Starlink", Aliases: []string{"SpaceX Starlink"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// cityLine renders a frame's cities as "name/region/island/lat,lon" for
// comparison; unknown coordinates print as "-".
func cityLine(f wireFrame) string {
	var parts []string
	for _, c := range f.Cities {
		pos := "-"
		if c.Latitude != nil && c.Longitude != nil {
			pos = fmt.Sprintf("%g,%g", *c.Latitude, *c.Longitude)
		}
		parts = append(parts, c.Name+"/"+c.Region+"/"+c.IslandGroup+"/"+pos)
	}
	return strings.Join(parts, " ")
}

// TestSetGazetteerRedrawsOpenPages: a city the shipped gazetteer lacks is
// drawn without island group or position (and sorted last) until the
// operator's gazetteer arrives; then snapshots carry it at once, and a page
// that is already open gets it in the next delta although no cell changed.
func TestSetGazetteerRedrawsOpenPages(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	for _, k := range []pathstate.CellKey{{SrcCity: "Tuguegarao", DstCity: "Davao", Carrier: "Globe", NetworkType: "4g"}, globeMD} {
		f.feed(k, t0, 30, 10)
	}
	h.tick(t0.Add(time.Second))
	base := serve(t, h)
	c := dial(t, base, "", nil)

	before := next(t, c)
	if want := "Manila/NCR/Luzon/14.5995,120.9842 Davao/Davao Region/Mindanao/7.1907,125.4553 Tuguegarao///-"; cityLine(before) != want {
		t.Fatalf("cities with the shipped gazetteer:\n got %s\nwant %s", cityLine(before), want)
	}

	h.SetGazetteer(operatorGazetteer(t))
	want := "Tuguegarao/Cagayan Valley/Luzon/17.6132,121.727 Manila/NCR/Luzon/14.5995,120.9842 Davao/Davao Region/Mindanao/7.1907,125.4553"
	resp, err := http.Get(base + PathSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	var snap wireFrame
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil || cityLine(snap) != want {
		t.Fatalf("snapshot right after SetGazetteer (%v):\n got %s\nwant %s", err, cityLine(snap), want)
	}

	// No cell changes in this tick: the delta is sent for the new meta alone.
	h.tick(t0.Add(2 * time.Second))
	d := next(t, c)
	if d.Type != "delta" || len(d.Cells) != 0 || cityLine(d) != want {
		t.Fatalf("open page got %s with %d cells and cities\n %s\nwant a delta with no cells and\n %s", d.Type, len(d.Cells), cityLine(d), want)
	}
	// Once sent, the meta is not repeated.
	f.feed(globeMD, t0.Add(15*time.Second), 18, 5)
	h.tick(t0.Add(16 * time.Second))
	if d := next(t, c); d.Type != "delta" || len(d.Cities) != 0 {
		t.Fatalf("next delta %s repeats the cities: %s", d.Type, cityLine(d))
	}

	// The operator's carrier aliases are understood in subscriptions, and
	// Gazetteer reports the gazetteer in use.
	sub, perr := h.parser.Subscription([]string{"SpaceX Starlink"}, nil, "", "")
	if perr != nil || len(sub.Carriers) != 1 || sub.Carriers[0] != "Starlink" {
		t.Errorf("carrier filter %v (%v), want [Starlink]", sub.Carriers, perr)
	}
	for _, g := range []*gazetteer.Gazetteer{h.Gazetteer()} {
		if city, ok := g.City("TUG"); !ok || city.Name != "Tuguegarao" {
			t.Errorf("effective gazetteer does not know TUG: %+v", city)
		}
	}

	// nil restores the shipped gazetteer.
	h.SetGazetteer(nil)
	h.tick(t0.Add(17 * time.Second))
	if d := next(t, c); !strings.HasSuffix(cityLine(d), "Tuguegarao///-") {
		t.Fatalf("after SetGazetteer(nil): %s", cityLine(d))
	}
}

// TestSetGazetteerConcurrently swaps the gazetteer while ticks, snapshots
// and subscriptions run (for the race detector).
func TestSetGazetteerConcurrently(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	f.feed(globeMD, t0, 18, 10)
	f.feed(pathstate.CellKey{SrcCity: "Tuguegarao", DstCity: "Davao", Carrier: "Globe", NetworkType: "4g"}, t0, 40, 10)
	base := serve(t, h)
	c := dial(t, base, "carrier=Starlink", nil)
	next(t, c)
	op := operatorGazetteer(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			if i%2 == 0 {
				h.SetGazetteer(op)
			} else {
				h.SetGazetteer(nil)
			}
		}
	}()
	for i := range 50 {
		h.tick(t0.Add(time.Duration(i+1) * time.Second))
		_, _ = h.parser.Subscription([]string{"SpaceX Starlink"}, nil, "", "")
		_ = h.Gazetteer()
	}
	<-done
	h.SetGazetteer(op)
	h.tick(t0.Add(time.Minute))
	// Whatever this client was sent meanwhile (deltas, or a snapshot if it
	// fell behind), the last cities it gets are the last gazetteer's.
	for {
		if d := next(t, c); len(d.Cities) > 0 && d.Cities[0].Name == "Tuguegarao" && d.Cities[0].Region == "Cagayan Valley" {
			break
		}
	}
}
