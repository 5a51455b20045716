package web_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/bantay-noc/bantay/internal/pagetest"
	"github.com/bantay-noc/bantay/web"
)

// probePath is one probed path: a probe in src measuring dst over one uplink.
type probePath struct {
	src, dst, carrier, nt string
	base                  float64 // typical latency, ms
	loss                  float64 // failure ratio now
	stopAgo               time.Duration
}

func (p probePath) key() heatmap.CellKey {
	return heatmap.CellKey{SrcCity: p.src, DstCity: p.dst, Carrier: p.carrier, NetworkType: p.nt}
}

// demoPaths: Manila, Baguio and Davao on two carriers with clearly
// different latencies, one lossy path and one that stopped reporting.
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
}

type pathStream struct {
	p                  probePath
	hKey, aKey, fKey   []byte
	start              time.Time
	counts             []uint64
	sum                float64
	attempts, failures float64
}

func newFeeder(paths []probePath) *feeder {
	f := &feeder{rng: rand.New(rand.NewPCG(4, 2)), paths: paths}
	for _, p := range paths {
		probe := strings.ToLower(p.src[:3]) + "-" + strings.ToLower(p.carrier)
		labels := []heatmap.Label{ // sorted by name, as AppendStreamKey wants
			{Name: "carrier", Value: p.carrier}, {Name: "dst_city", Value: p.dst}, {Name: "method", Value: "udp"},
			{Name: "network_type", Value: p.nt}, {Name: "src_city", Value: p.src}, {Name: "target", Value: "reflector-" + strings.ToLower(p.dst)},
		}
		f.streams = append(f.streams, &pathStream{
			p:      p,
			hKey:   heatmap.AppendStreamKey(nil, heatmap.KindLatency, probe, labels),
			aKey:   heatmap.AppendStreamKey(nil, heatmap.KindAttempts, probe, labels),
			fKey:   heatmap.AppendStreamKey(nil, heatmap.KindFailures, probe, labels),
			counts: make([]uint64, len(heatmap.DefaultBounds)+1),
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
		for range 8 {
			s.attempts++
			if f.rng.Float64() < loss {
				s.failures++
				continue
			}
			v := base * math.Exp(0.18*f.rng.NormFloat64())
			i, _ := slices.BinarySearch(heatmap.DefaultBounds, v)
			s.counts[i]++
			s.sum += v
		}
		h.Observe(&heatmap.Point{Kind: heatmap.KindLatency, Stream: s.hKey, Cell: p.key(), Start: s.start, Time: at,
			Bounds: heatmap.DefaultBounds, Counts: slices.Clone(s.counts), Sum: s.sum})
		h.Observe(&heatmap.Point{Kind: heatmap.KindAttempts, Stream: s.aKey, Cell: p.key(), Start: s.start, Time: at, Value: s.attempts})
		h.Observe(&heatmap.Point{Kind: heatmap.KindFailures, Stream: s.fKey, Cell: p.key(), Start: s.start, Time: at, Value: s.failures})
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
	h, err := heatmap.New(heatmap.Config{BroadcastInterval: 200 * time.Millisecond}, prometheus.NewRegistry(), nil)
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

// TestBrowserLiveHeatmap drives Debian's Chromium against a real heatmap
// (fed through its public Observe API) and the embedded page, both served
// on 127.0.0.1 exactly as the collector mounts them.
func TestBrowserLiveHeatmap(t *testing.T) {
	pg := pagetest.Open(t, 60*time.Second)
	ctx, shot, must := pg.Ctx, pg.Shot, pg.Must

	hm := newHeatmap(t)
	t.Cleanup(func() { _ = hm.Close() })
	fd := newFeeder(demoPaths())
	now := time.Now()
	fd.history(hm, now.Add(-3*time.Second))

	var hmHandler swapHandler
	hmHandler.set(hm.Handler())
	mux := http.NewServeMux()
	for _, p := range heatmap.Paths() {
		mux.Handle(p, &hmHandler)
	}
	mux.Handle("/", web.Handler())
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
	matchSnapshot("window=5m", 12)

	// Hovering the cell shows the same numbers in the tooltip.
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('`+cellSel+`').getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2] })()`))
	must("locate "+focusID, err)
	must("hover "+focusID, chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0], box[1]),
		chromedp.WaitVisible(`#tooltip td[data-k=p50]`)))
	tipCheck, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.querySelector('`+cellSel+`').dataset.p50,
		document.querySelector('#tooltip td[data-k=p50]').textContent, document.querySelector('#tooltip h3').textContent]`))
	must("read the tooltip", err)
	p50, _ := strconv.ParseFloat(tipCheck[0], 64)
	if tipCheck[1] != fmtMs(p50) || tipCheck[2] != "Manila → Davao" {
		t.Errorf("tooltip shows p50 %q for %q, want %q for Manila → Davao (data-p50 %s)", tipCheck[1], tipCheck[2], fmtMs(p50), tipCheck[0])
	}
	builds, err := chromedp.Run(ctx, chromedp.Evaluate[string](`matrix.dataset.builds`))
	must("read the layout count", err)
	shot("wall-1920x1080.png")

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
	filled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[drill.dataset.id, drill.dataset.filled, drill.dataset.columns]`))
	must("read the drill-down", err)
	if n, _ := strconv.Atoi(filled[1]); filled[0] != focusID || n < 200 {
		t.Errorf("drill-down shows %q with %s of %s columns filled, want %s with an hour (≥200 of 240)", filled[0], filled[1], filled[2], focusID)
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
		`app.dataset.connects === "2" && app.dataset.conn === "live" && document.querySelectorAll('#matrix [role=gridcell][data-p50]').length === 12`,
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
	hm2.PublishEvents([]heatmap.FeedEvent{
		{Time: evAt.Add(-2 * time.Second), Kind: "path_degraded", Level: "warn", Body: "Manila → Davao via Globe 5g degraded",
			SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"},
		{Time: evAt.Add(-time.Second), Kind: "probe_failure", Level: "warn", Body: "Davao → Manila via Smart 4g: timeouts",
			SrcCity: "Davao", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g"},
	})
	hm2.PublishEvents([]heatmap.FeedEvent{{Time: evAt, Kind: "rules_reloaded", Level: "info", Body: "rules reloaded"}})
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
