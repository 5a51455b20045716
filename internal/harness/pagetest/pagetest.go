// Package pagetest drives Bantay's NOC page (web/) in Debian's headless
// Chromium for tests. It starts the browser the way this machine needs
// (root, no sandbox, no background networking), fails the test on any
// console error or uncaught exception, saves screenshots as test artefacts
// after checking that no fixed bar of the page clips its contents, and reads
// the numbers the page shows from its accessible grid.
package pagetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// Page is one browser tab for the duration of a test.
type Page struct {
	t *testing.T
	// Ctx runs actions on the tab; it ends after the timeout given to Open.
	Ctx       context.Context
	browser   context.Context
	artifacts string

	mu          sync.Mutex
	consoleErrs []string
}

// Open starts Chromium (skipping, or failing under CI, when it is not
// installed) and bounds everything the test does with it by timeout.
// Cleanup closes the browser and fails the test if the page logged errors,
// except the browser's own lines about websocket connections failing, which
// tests that restart the server provoke on purpose.
func Open(t *testing.T, timeout time.Duration) *Page {
	t.Helper()
	chromium := testenv.Binary(t, "chromium", "CHROMIUM")
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1920, 1080),
	)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	// Start the browser without a deadline (a deadline on the first Run
	// would bound the browser's life), then bound the test's actions.
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, timeout)
	p := &Page{t: t, Ctx: ctx, browser: browser, artifacts: ArtifactsDir(t)}

	consoleCtx, stopConsole := context.WithCancel(browser)
	msgs := chromedp.Console(consoleCtx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if (m.IsException() || m.Type == chromedp.ConsoleError) && !strings.Contains(m.Text, "WebSocket connection to") {
				p.mu.Lock()
				p.consoleErrs = append(p.consoleErrs, m.String())
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		cancel()
		cancelBrowser()
		cancelAlloc()
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.consoleErrs) > 0 {
			t.Errorf("the page logged errors:\n%s", strings.Join(p.consoleErrs, "\n"))
		}
	})
	return p
}

// ArtifactsDir is where screenshots go: $BANTAY_ARTIFACTS (CI collects it)
// or the test's temporary directory.
func ArtifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BANTAY_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Must fails the test when err is set, after saving failure.png and the
// page's state (connection, frames, focus, tooltip, drill-down), which is
// what one needs to see why a wait timed out.
func (p *Page) Must(what string, err error) {
	p.t.Helper()
	if err == nil {
		return
	}
	dctx, cancel := context.WithTimeout(p.browser, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(dctx, chromedp.CaptureScreenshot()); err == nil {
		_ = os.WriteFile(filepath.Join(p.artifacts, "failure.png"), png, 0o644)
	}
	st, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`JSON.stringify({conn: app.dataset.conn, frames: app.dataset.frames,
		active: document.activeElement && (document.activeElement.dataset.id || document.activeElement.tagName),
		tooltip: tooltip.hidden ? "hidden" : tooltip.textContent.slice(0, 200), drill: drill.dataset.state})`))
	p.t.Fatalf("%s: %v\npage state: %s", what, err, st)
}

// overflowJS lists the visible parts of the page's fixed bars and panels that
// stick out of (and are clipped by) their bar: a legend entry cut off at the
// edge, a drill-down Close button pushed outside its box.
const overflowJS = `(() => {
	const bad = [];
	for (const sel of ['.topbar', '.legend', '.drill-head', '.drill-legend', '.feed']) {
		const bar = document.querySelector(sel);
		if (!bar || bar.offsetParent === null) continue;
		const box = bar.getBoundingClientRect();
		for (const e of bar.querySelectorAll('*')) {
			const r = e.getBoundingClientRect();
			if (e.offsetParent === null || r.width <= 1) continue;
			if (r.right > box.right + 1 || r.left < box.left - 1) {
				bad.push(sel + ' > ' + (e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' + e.className) + ' "' + e.textContent.trim().slice(0, 30) + '"');
			}
		}
	}
	return bad;
})()`

// Shot checks that nothing on the page is clipped by its bar (an error, not
// fatal) and saves a screenshot named name in the artefacts directory.
func (p *Page) Shot(name string) {
	p.t.Helper()
	clipped, err := chromedp.Run(p.Ctx, chromedp.Evaluate[[]string](overflowJS))
	if err != nil {
		p.t.Fatalf("check layout of %s: %v", name, err)
	}
	if len(clipped) > 0 {
		p.t.Errorf("%s: parts of the page are clipped by their bar:\n%s", name, strings.Join(clipped, "\n"))
	}
	png, err := chromedp.Run(p.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(p.artifacts, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// Cell is what the accessible grid exposes for one cell with data, every
// number exactly as the page received it.
type Cell struct {
	ID       string `json:"id"`
	P50      string `json:"p50"`
	P90      string `json:"p90"`
	P99      string `json:"p99"`
	Mean     string `json:"mean"`
	Count    string `json:"count"`
	Loss     string `json:"loss"`
	Jitter   string `json:"jitter"`
	Stale    string `json:"stale"`
	State    string `json:"state"`
	LastSeen string `json:"lastSeen"`
}

// View is the page's cells with the time range they cover.
type View struct {
	WindowFrom string `json:"from"`
	WindowTo   string `json:"to"`
	Cells      []Cell `json:"cells"`
}

// CellSelector selects the grid cell of one path ("src|dst|carrier|nt").
func CellSelector(id string) string {
	return `#matrix [role=gridcell][data-id="` + id + `"]`
}

// Read returns the cells that have data and the window they cover.
func (p *Page) Read() (View, error) {
	return chromedp.Run(p.Ctx, chromedp.Evaluate[View](`({from: app.dataset.windowFrom || "", to: app.dataset.windowTo || "",
	cells: [...document.querySelectorAll('#matrix [role=gridcell][data-p50]')].map(e => ({
		id: e.dataset.id, p50: e.dataset.p50, p90: e.dataset.p90, p99: e.dataset.p99, mean: e.dataset.mean,
		count: e.dataset.count, loss: e.dataset.loss, jitter: e.dataset.jitter, stale: e.dataset.stale, state: e.dataset.state,
		lastSeen: e.dataset.lastSeen}))})`))
}
