package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/heatmap/wire"
	"github.com/bantay-noc/bantay/internal/harness/pagetest"
	"github.com/bantay-noc/bantay/internal/store"
	"github.com/bantay-noc/bantay/web"
)

// probePath is one probed path: a probe in src measuring dst over one uplink.
type probePath struct {
	src, dst, carrier, nt string
	base                  float64 // typical latency, ms
	loss                  float64 // failure ratio now
	stopAgo               time.Duration
}

func (p probePath) key() pathstate.CellKey {
	return pathstate.CellKey{SrcCity: p.src, DstCity: p.dst, Carrier: p.carrier, NetworkType: p.nt}
}

// demoPaths: Manila, Baguio and Davao on two carriers with clearly
// different latencies, one lossy path and one that stopped reporting, and a
// third carrier probed only from Baguio and Davao (its panel has two rows).
func demoPaths() []probePath {
	base := map[[2]string]float64{
		{"Manila", "Baguio"}: 7, {"Baguio", "Manila"}: 7.5,
		{"Manila", "Davao"}: 27, {"Davao", "Manila"}: 29,
		{"Baguio", "Davao"}: 34, {"Davao", "Baguio"}: 36,
	}
	var out []probePath
	for _, c := range []struct {
		carrier, nt string
		factor      float64
	}{{"Globe", "5g", 1}, {"Smart", "4g", 1.9}} {
		for _, pair := range [][2]string{
			{"Manila", "Baguio"}, {"Manila", "Davao"}, {"Baguio", "Manila"},
			{"Baguio", "Davao"}, {"Davao", "Manila"}, {"Davao", "Baguio"},
		} {
			p := probePath{src: pair[0], dst: pair[1], carrier: c.carrier, nt: c.nt, base: base[pair] * c.factor}
			if c.carrier == "Smart" && pair == [2]string{"Davao", "Manila"} {
				p.loss = 0.08
			}
			if c.carrier == "Smart" && pair == [2]string{"Baguio", "Davao"} {
				p.stopAgo = 4 * time.Minute
			}
			out = append(out, p)
		}
	}
	for _, pair := range [][2]string{{"Baguio", "Manila"}, {"Baguio", "Davao"}, {"Davao", "Manila"}, {"Davao", "Baguio"}} {
		out = append(out, probePath{src: pair[0], dst: pair[1], carrier: "DITO", nt: "4g", base: base[pair] * 1.4})
	}
	return out
}

// feeder turns simulated probe measurements into the cumulative OTLP-like
// points the heatmap exporter hands to Heatmap.Observe: a histogram with the
// metric model's bounds, an attempts counter and a failures counter per path,
// each its own stream keyed the way the exporter keys it.
type feeder struct {
	mu      sync.Mutex
	rng     *rand.Rand
	paths   []probePath
	streams []*pathStream
	// backlog holds what Manila→Davao over Globe measured while its
	// collector was down (25 to 20 minutes ago), delivered after the
	// first point that follows, as a probe's queue does.
	backlog []*aggregate.Point
}

type pathStream struct {
	p                  probePath
	hKey, aKey, fKey   []byte
	jKey, pKey         []byte // jitter sum and pairs
	start              time.Time
	counts             []uint64
	sum                float64
	attempts, failures float64
	jitter, pairs      float64
	last               float64 // the previous answer's RTT in the round, 0 before one
}

func newFeeder(paths []probePath) *feeder {
	f := &feeder{rng: rand.New(rand.NewPCG(4, 2)), paths: paths}
	for _, p := range paths {
		probe := strings.ToLower(p.src[:3]) + "-" + strings.ToLower(p.carrier)
		labels := []aggregate.Label{ // sorted by name, as AppendStreamKey wants
			{Name: "carrier", Value: p.carrier}, {Name: "dst_city", Value: p.dst}, {Name: "method", Value: "udp"},
			{Name: "network_type", Value: p.nt}, {Name: "src_city", Value: p.src}, {Name: "target", Value: "reflector-" + strings.ToLower(p.dst)},
		}
		f.streams = append(f.streams, &pathStream{
			p:      p,
			hKey:   aggregate.AppendStreamKey(nil, aggregate.KindLatency, probe, labels),
			aKey:   aggregate.AppendStreamKey(nil, aggregate.KindAttempts, probe, labels),
			fKey:   aggregate.AppendStreamKey(nil, aggregate.KindFailures, probe, labels),
			jKey:   aggregate.AppendStreamKey(nil, aggregate.KindJitter, probe, labels),
			pKey:   aggregate.AppendStreamKey(nil, aggregate.KindJitterPairs, probe, labels),
			counts: make([]uint64, len(aggregate.DefaultBounds)+1),
		})
	}
	return f
}

// step records one probe interval (8 attempts) for every path that is still
// reporting at `at` and feeds the cumulative points; `now` is the wall
// clock against which stopAgo is measured.
func (f *feeder) step(h *heatmap.Heatmap, at, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.streams {
		p := s.p
		if p.stopAgo > 0 && at.After(now.Add(-p.stopAgo)) {
			continue
		}
		if s.start.IsZero() {
			s.start = at.Add(-10 * time.Second)
		}
		base, loss := p.base, p.loss
		// An incident 40 to 30 minutes ago on Manila→Davao over Globe: twice
		// the latency and 15 % loss, so the drill-down has something to show.
		if p.src == "Manila" && p.dst == "Davao" && p.carrier == "Globe" && at.After(now.Add(-40*time.Minute)) && at.Before(now.Add(-30*time.Minute)) {
			base, loss = base*2, 0.15
		}
		s.last = 0
		for range 8 {
			s.attempts++
			if f.rng.Float64() < loss {
				s.failures++
				continue
			}
			v := base * math.Exp(0.18*f.rng.NormFloat64())
			i, _ := slices.BinarySearch(aggregate.DefaultBounds, v)
			s.counts[i]++
			s.sum += v
			if s.last > 0 {
				s.jitter, s.pairs = s.jitter+math.Abs(v-s.last), s.pairs+1
			}
			s.last = v
		}
		points := []*aggregate.Point{
			{Kind: aggregate.KindLatency, Stream: s.hKey, Cell: p.key(), Start: s.start, Time: at,
				Bounds: aggregate.DefaultBounds, Counts: slices.Clone(s.counts), Sum: s.sum},
			{Kind: aggregate.KindAttempts, Stream: s.aKey, Cell: p.key(), Start: s.start, Time: at, Value: s.attempts},
			{Kind: aggregate.KindFailures, Stream: s.fKey, Cell: p.key(), Start: s.start, Time: at, Value: s.failures},
			{Kind: aggregate.KindJitter, Stream: s.jKey, Cell: p.key(), Start: s.start, Time: at, Value: s.jitter},
			{Kind: aggregate.KindJitterPairs, Stream: s.pKey, Cell: p.key(), Start: s.start, Time: at, Value: s.pairs},
		}
		if p.key().ID() != "Manila|Davao|Globe|5g" {
			observeAll(h, points)
			continue
		}
		if at.After(now.Add(-25*time.Minute)) && at.Before(now.Add(-20*time.Minute)) {
			f.backlog = append(f.backlog, points...)
			continue
		}
		observeAll(h, points)
		observeAll(h, f.backlog)
		f.backlog = nil
	}
}

func observeAll(h *heatmap.Heatmap, points []*aggregate.Point) {
	for _, p := range points {
		h.Observe(p)
	}
}

// history feeds the last hour at the 15 s probe cadence, ending at `end`.
func (f *feeder) history(h *heatmap.Heatmap, end time.Time) {
	for k := 239; k >= 0; k-- {
		f.step(h, end.Add(-time.Duration(k)*15*time.Second), end)
	}
}

// swapHandler lets the test replace the heatmap behind /ws (a collector restart).
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }
func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func newHeatmap(t *testing.T) *heatmap.Heatmap {
	t.Helper()
	// A fast broadcast keeps the test short; everything else is the default.
	h, err := heatmap.New(heatmap.Config{Hub: hub.Config{BroadcastInterval: 200 * time.Millisecond}}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

type snapCell struct {
	ID       string   `json:"id"`
	P50      *float64 `json:"p50"`
	P90      *float64 `json:"p90"`
	P99      *float64 `json:"p99"`
	Mean     *float64 `json:"mean"`
	Count    uint64   `json:"count"`
	Loss     *float64 `json:"loss"`
	Jitter   *float64 `json:"jitter"`
	Stale    bool     `json:"stale"`
	State    string   `json:"state"`
	LastSeen int64    `json:"last_seen"`
}

func fetchSnapshot(t *testing.T, base, query string) (map[string]snapCell, string) {
	t.Helper()
	resp, err := http.Get(base + "/api/heatmap/snapshot?" + query)
	if err != nil {
		t.Fatalf("GET snapshot: %v", err)
	}
	defer resp.Body.Close()
	var s struct {
		Window struct{ Name string } `json:"window"`
		Cells  []snapCell            `json:"cells"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("decode snapshot: %v", err)
	}
	out := map[string]snapCell{}
	for _, c := range s.Cells {
		out[c.ID] = c
	}
	return out, s.Window.Name
}

// diffCells compares the page's numbers with the snapshot API's, exactly
// (the page keeps the JSON numbers it received).
func diffCells(page []pagetest.Cell, snap map[string]snapCell) []string {
	var diffs []string
	num := func(id, field, got string, want *float64) {
		if want == nil {
			if got != "" {
				diffs = append(diffs, fmt.Sprintf("%s %s: page %q, snapshot null", id, field, got))
			}
			return
		}
		g, err := strconv.ParseFloat(got, 64)
		if err != nil || g != *want {
			diffs = append(diffs, fmt.Sprintf("%s %s: page %q, snapshot %v", id, field, got, *want))
		}
	}
	if len(page) != len(snap) {
		diffs = append(diffs, fmt.Sprintf("page shows %d cells, snapshot has %d", len(page), len(snap)))
	}
	for _, p := range page {
		s, ok := snap[p.ID]
		if !ok {
			diffs = append(diffs, p.ID+": on the page, not in the snapshot")
			continue
		}
		num(p.ID, "p50", p.P50, s.P50)
		num(p.ID, "p90", p.P90, s.P90)
		num(p.ID, "p99", p.P99, s.P99)
		num(p.ID, "mean", p.Mean, s.Mean)
		num(p.ID, "loss", p.Loss, s.Loss)
		num(p.ID, "jitter", p.Jitter, s.Jitter)
		if p.Count != strconv.FormatUint(s.Count, 10) || p.Stale != strconv.FormatBool(s.Stale) ||
			p.State != s.State || p.LastSeen != strconv.FormatInt(s.LastSeen, 10) {
			diffs = append(diffs, fmt.Sprintf("%s: page count/stale/state/last_seen %s/%s/%s/%s, snapshot %d/%t/%s/%d",
				p.ID, p.Count, p.Stale, p.State, p.LastSeen, s.Count, s.Stale, s.State, s.LastSeen))
		}
	}
	return diffs
}

// fmtMs mirrors the page's fmtMs(ms, true) (scale.js).
func fmtMs(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + " s"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.Itoa(int(math.Round(v))) + " ms"
}

// panelLayout is one carrier panel as laid out on the page: its row and
// column headers (ARIA grid) and where its cells are, relative to the panel.
type panelLayout struct {
	Key   string       `json:"key"`
	Rows  []string     `json:"rows"`
	Cols  []string     `json:"cols"`
	Box   [4]float64   `json:"box"` // left, top, right, bottom on the page
	Cells []cellLayout `json:"cells"`
}

type cellLayout struct {
	ID         string  `json:"id"`
	X, Y, W, H float64 // relative to the panel
}

type matrixLayout struct {
	Box    [4]float64    `json:"box"` // the #matrix area
	Panels []panelLayout `json:"panels"`
}

const readLayoutJS = `(() => {
	const box = (r) => [r.left, r.top, r.right, r.bottom];
	const m = document.getElementById('matrix');
	return {box: box(m.getBoundingClientRect()), panels: [...m.querySelectorAll('.mpanel')].map((p) => {
		const pr = p.getBoundingClientRect();
		return {key: p.dataset.panel, box: box(pr),
			rows: [...p.querySelectorAll('[role=rowheader]')].map((e) => e.textContent),
			cols: [...p.querySelectorAll('[role=columnheader]')].slice(1).map((e) => e.textContent),
			cells: [...p.querySelectorAll('[role=gridcell]')].map((e) => { const r = e.getBoundingClientRect();
				return {id: e.dataset.id, X: r.left - pr.left, Y: r.top - pr.top, W: r.width, H: r.height} })};
	})};
})()`

// checkLayout checks the matrix against what NOC staff need to read it: a
// panel per carrier and network type whose rows are only its probes' source
// cities, every destination as a column in one order, columns at the same
// offsets in every panel, panels that do not overlap, and cells as large as
// the area allows (capped at maxCell).
func checkLayout(t *testing.T, view string, l matrixLayout, wantRows map[string][]string, cols []string, maxCell float64) {
	t.Helper()
	var keys []string
	for _, p := range l.Panels {
		keys = append(keys, p.Key)
	}
	if want := slices.Sorted(maps.Keys(wantRows)); !slices.Equal(keys, want) {
		t.Fatalf("%s: panels %v, want %v", view, keys, want)
	}
	var size float64
	var colX []float64
	used := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for i, p := range l.Panels {
		if !slices.Equal(p.Rows, wantRows[p.Key]) || !slices.Equal(p.Cols, cols) {
			t.Errorf("%s: panel %s has rows %v and columns %v, want rows %v (its sources only) and columns %v",
				view, p.Key, p.Rows, p.Cols, wantRows[p.Key], cols)
			continue
		}
		if len(p.Cells) != len(p.Rows)*len(cols) {
			t.Errorf("%s: panel %s has %d grid cells, want %d", view, p.Key, len(p.Cells), len(p.Rows)*len(cols))
			continue
		}
		for k, c := range p.Cells {
			r, col := k/len(cols), k%len(cols)
			if want := p.Rows[r] + "|" + cols[col] + "|" + p.Key; c.ID != want {
				t.Errorf("%s: cell %d of panel %s is %s, want %s", view, k, p.Key, c.ID, want)
			}
			if size == 0 {
				size = c.W
			}
			if c.W != size || c.H != size {
				t.Errorf("%s: cell %s is %.0f×%.0f px, the others %.0f px", view, c.ID, c.W, c.H, size)
			}
			if r == 0 && i == 0 {
				colX = append(colX, c.X)
			}
			if c.X != colX[col] || (col > 0 && c.Y != p.Cells[k-1].Y) {
				t.Errorf("%s: cell %s at (%.0f, %.0f) in its panel is out of line with the columns %v", view, c.ID, c.X, c.Y, colX)
			}
		}
		for _, q := range l.Panels[:i] {
			if p.Box[0] < q.Box[2] && q.Box[0] < p.Box[2] && p.Box[1] < q.Box[3] && q.Box[1] < p.Box[3] {
				t.Errorf("%s: panels %s %v and %s %v overlap", view, p.Key, p.Box, q.Key, q.Box)
			}
		}
		used = [4]float64{min(used[0], p.Box[0]), min(used[1], p.Box[1]), max(used[2], p.Box[2]), max(used[3], p.Box[3])}
	}
	if used[0] < l.Box[0]-1 || used[1] < l.Box[1]-1 || used[2] > l.Box[2]+1 || used[3] > l.Box[3]+1 {
		t.Errorf("%s: the panels %v stick out of the matrix area %v", view, used, l.Box)
	}
	// Either the cells are at their cap or the panels fill the area's width
	// or height: the cells could not be any larger.
	fillW := (used[2] - used[0]) / (l.Box[2] - l.Box[0])
	fillH := (used[3] - used[1]) / (l.Box[3] - l.Box[1])
	if size < maxCell && fillW < 0.9 && fillH < 0.9 {
		t.Errorf("%s: %.0f px cells use only %.0f %% × %.0f %% of the matrix area", view, size, 100*fillW, 100*fillH)
	}
	t.Logf("%s: %.0f px cells, panels fill %.0f %% × %.0f %% of the matrix area", view, size, 100*fillW, 100*fillH)
}

// TestBrowserLiveHeatmap drives Debian's Chromium against a real heatmap
// (fed through its public Observe API) and the embedded page, both served
// on 127.0.0.1 exactly as the collector mounts them.
func TestBrowserLiveHeatmap(t *testing.T) {
	pg := pagetest.Open(t, 60*time.Second)
	ctx, shot, must := pg.Ctx, pg.Shot, pg.Must

	hm := newHeatmap(t)
	t.Cleanup(func() { _ = hm.Close() })
	paths := demoPaths()
	fd := newFeeder(paths)
	now := time.Now()
	fd.history(hm, now.Add(-3*time.Second))

	var hmHandler swapHandler
	hmHandler.set(hm.Handler())
	mux := http.NewServeMux()
	for _, p := range heatmap.Paths() {
		mux.Handle(p, &hmHandler)
	}
	mux.Handle("/", web.Handler())
	// The Prometheus API beside the page, as on the collector's listener:
	// the drill-down asks it for exemplars and the native median. This
	// store is empty, so the drill-down draws the heatmap's columns alone.
	st, err := store.Open(store.DefaultConfig(t.TempDir()), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", st.APIHandler(store.APIDeps{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	const focusID = "Manila|Davao|Globe|5g"
	cellSel := pagetest.CellSelector(focusID)

	// --- wall mode, 1920×1080 ---------------------------------------------
	must("open the page in wall mode", chromedp.Do(ctx,
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Navigate(srv.URL+"/?wall=1"),
		chromedp.WaitVisible(cellSel+`[data-p50]`),
	))
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('`+cellSel+`').dataset.lastSeen`))
	must("read last_seen", err)
	// The demo's "Stage incident" button needs bantay-demo's /demo/incident,
	// which a deployment's collector does not serve (404 here): hidden.
	// (The page asks once at load; by the first cell that answer is in.)
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('incident').hidden`))
	must("read the incident button", err)
	if !hidden {
		t.Error("the production page shows the demo's incident button")
	}

	// A live measurement arrives: the page must show it without a reload.
	fd.step(hm, time.Now(), time.Now())
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const e = document.querySelector('`+cellSel+`'); return !!e && e.dataset.lastSeen !== `+strconv.Quote(first)+` })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	must("wait for a live update of "+focusID, err)

	// The numbers on the page equal the snapshot API's for the same window.
	// They are compared until they agree (the page gets the frame of the
	// broadcast the API answers from a moment later); a lasting difference fails.
	matchSnapshot := func(query string, want int) {
		t.Helper()
		var diffs []string
		for deadline := time.Now().Add(10 * time.Second); ; {
			view, err := pg.Read()
			must("read the grid", err)
			page := view.Cells
			snap, _ := fetchSnapshot(t, srv.URL, query)
			if diffs = diffCells(page, snap); len(diffs) == 0 && len(page) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page and /api/heatmap/snapshot?%s disagree (%d cells on the page, want %d):\n%s", query, len(page), want, strings.Join(diffs, "\n"))
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	matchSnapshot("window=5m", len(paths))

	// Each panel has as rows only the cities its probes are in (DITO: not
	// Manila), and every destination as a column, in the collector's order.
	cities := []string{"Baguio", "Manila", "Davao"}
	wantRows := map[string][]string{
		"DITO|4g": {"Baguio", "Davao"}, "Globe|5g": cities, "Smart|4g": cities,
	}
	layout, err := chromedp.Run(ctx, chromedp.Evaluate[matrixLayout](readLayoutJS))
	must("read the layout", err)
	checkLayout(t, "wall 1920×1080", layout, wantRows, cities, 190)

	// Hovering the cell shows the same numbers in the tooltip.
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('`+cellSel+`').getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2] })()`))
	must("locate "+focusID, err)
	must("hover "+focusID, chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0], box[1]),
		chromedp.WaitVisible(`#tooltip td[data-k=p50]`)))
	tipCheck, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.querySelector('`+cellSel+`').dataset.p50,
		document.querySelector('#tooltip td[data-k=p50]').textContent, document.querySelector('#tooltip h3').textContent,
		document.querySelector('`+cellSel+`').dataset.jitter, document.querySelector('#tooltip td[data-k=jitter]').textContent]`))
	must("read the tooltip", err)
	p50, _ := strconv.ParseFloat(tipCheck[0], 64)
	if tipCheck[1] != fmtMs(p50) || tipCheck[2] != "Manila → Davao" {
		t.Errorf("tooltip shows p50 %q for %q, want %q for Manila → Davao (data-p50 %s)", tipCheck[1], tipCheck[2], fmtMs(p50), tipCheck[0])
	}
	// Jitter beside loss, in the same format.
	if jit, err := strconv.ParseFloat(tipCheck[3], 64); err != nil || jit <= 0 || tipCheck[4] != fmtMs(jit) {
		t.Errorf("tooltip shows jitter %q, want %q (data-jitter %q)", tipCheck[4], fmtMs(jit), tipCheck[3])
	}
	builds, err := chromedp.Run(ctx, chromedp.Evaluate[string](`matrix.dataset.builds`))
	must("read the layout count", err)
	shot("wall-1920x1080.png")

	// Page Up / Page Down move between panels with different rows: to the
	// same source city where the other panel has it, else to the nearest row.
	active := func(what, keys string) {
		t.Helper()
		must(what, chromedp.Do(ctx, chromedp.KeyEvent(keys)))
	}
	wantFocus := func(want string) {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.dataset.id || document.activeElement.tagName`))
		must("read the focus", err)
		if got != want {
			t.Errorf("focus is on %s, want %s", got, want)
		}
	}
	must("focus a cell", chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 1, 1),
		chromedp.Focus(chromedp.CSS(`#matrix [role=gridcell][data-id="Manila|Manila|Globe|5g"]`))))
	active("Page Up to the DITO panel", kb.PageUp)
	wantFocus("Davao|Manila|DITO|4g")
	active("Arrow Down past DITO's last row", kb.ArrowDown)
	wantFocus("Davao|Manila|DITO|4g")
	active("Arrow Up, End", kb.ArrowUp+kb.End)
	wantFocus("Baguio|Davao|DITO|4g")
	active("Page Down to the Globe panel", kb.PageDown)
	wantFocus("Baguio|Davao|Globe|5g")

	// Keyboard: focus the (unprobed) Manila→Manila cell, move right to
	// Manila→Davao and press Enter: the drill-down opens, fills with the
	// last hour and then keeps updating live.
	must("open the drill-down from the keyboard", chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 1, 1),
		chromedp.Focus(chromedp.CSS(`#matrix [role=gridcell][data-id="Manila|Manila|Globe|5g"]`)),
		chromedp.KeyEvent(kb.ArrowRight),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(`#drill[data-state=ready]`),
	))
	filled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[drill.dataset.id, drill.dataset.filled, drill.dataset.columns, drill.dataset.late]`))
	must("read the drill-down", err)
	if n, _ := strconv.Atoi(filled[1]); filled[0] != focusID || n < 200 {
		t.Errorf("drill-down shows %q with %s of %s columns filled, want %s with an hour (≥200 of 240)", filled[0], filled[1], filled[2], focusID)
	}
	// The outage 25 to 20 minutes ago was delivered late: its 19 columns
	// (5 minutes at 15 s, less the edges) are drawn as late.
	if n, _ := strconv.Atoi(filled[3]); n < 15 || n > 20 {
		t.Errorf("drill-down has %s late columns, want the outage's 19", filled[3])
	}
	fd.step(hm, time.Now(), time.Now())
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`Number(drill.dataset.updates) > 0`, chromedp.WithPollingTimeout(10*time.Second)))
	must("wait for a live drill-down update", err)
	shot("wall-drilldown-1920x1080.png")
	if b, err := chromedp.Run(ctx, chromedp.Evaluate[string](`matrix.dataset.builds`)); err != nil || b != builds {
		t.Errorf("the matrix was laid out again while only data changed (builds %s → %s, %v)", builds, b, err)
	}
	must("close the drill-down with Esc", chromedp.Do(ctx, chromedp.KeyEvent("\x1b"), chromedp.WaitNotVisible(`#drill`)))

	// --- laptop, light theme, 1366×768; open the drill-down by clicking ----
	must("open the page on a laptop screen", chromedp.Do(ctx,
		chromedp.EmulateViewport(1366, 768),
		chromedp.Navigate(srv.URL+"/?wall=0"),
		chromedp.WaitVisible(cellSel+`[data-p50]`),
	))
	shot("laptop-1366x768.png")
	layout, err = chromedp.Run(ctx, chromedp.Evaluate[matrixLayout](readLayoutJS))
	must("read the layout", err)
	checkLayout(t, "laptop 1366×768", layout, wantRows, cities, 130)
	smart := `#matrix [role=gridcell][data-id="Davao|Manila|Smart|4g"]`
	must("click a cell", chromedp.Do(ctx, chromedp.Click(chromedp.CSS(smart)), chromedp.WaitVisible(`#drill[data-state=ready]`)))
	shot("laptop-drilldown-1366x768.png")
	must("close the drill-down with its button", chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drill-close`)), chromedp.WaitNotVisible(`#drill`)))

	// --- the collector restarts: the page reconnects by itself ------------
	hm2 := newHeatmap(t)
	t.Cleanup(func() { _ = hm2.Close() })
	fd2 := newFeeder(demoPaths())
	fd2.history(hm2, time.Now())
	hmHandler.set(hm2.Handler())
	_ = hm.Close() // closes the page's websocket with 1001
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](
		`app.dataset.connects === "2" && app.dataset.conn === "live" && document.querySelectorAll('#matrix [role=gridcell][data-p50]').length === `+strconv.Itoa(len(paths)),
		chromedp.WithPollingTimeout(15*time.Second)))
	must("wait for the page to reconnect after a restart", err)

	// The selectors become the subscription: Globe only, over one minute.
	must("pick Globe and 1m", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#sel-carrier button[data-value="Globe"]`)),
		chromedp.Click(chromedp.CSS(`#sel-window button[data-value="1m"]`)),
	))
	matchSnapshot("window=1m&carrier=Globe", 6)
	if q, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`)); err != nil || !strings.Contains(q, "carrier=Globe") || !strings.Contains(q, "window=1m") {
		t.Errorf("the URL does not keep the selection: %q (%v)", q, err)
	}
	shot("laptop-globe-1m-1366x768.png")

	// --- the event feed: newest first, filtered like the heatmap (Globe) ---
	evAt := time.Now()
	hm2.PublishEvents([]wire.FeedEvent{
		{Time: evAt.Add(-2 * time.Second), Kind: "path_degraded", Level: "warn", Body: "Manila → Davao via Globe 5g degraded",
			SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"},
		{Time: evAt.Add(-time.Second), Kind: "probe_failure", Level: "warn", Body: "Davao → Manila via Smart 4g: timeouts",
			SrcCity: "Davao", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g"},
	})
	hm2.PublishEvents([]wire.FeedEvent{{Time: evAt, Kind: "rules_reloaded", Level: "info", Body: "rules reloaded"}})
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('#events li[data-kind]').length === 2`,
		chromedp.WithPollingTimeout(15*time.Second)))
	must("wait for the events in the feed", err)
	kinds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#events li[data-kind]')].map((e) => e.dataset.kind)`))
	must("read the feed", err)
	if !slices.Equal(kinds, []string{"rules_reloaded", "path_degraded"}) {
		t.Errorf("feed shows %v, want [rules_reloaded path_degraded] (newest first, Smart filtered out)", kinds)
	}
	shot("laptop-events-1366x768.png")
}
