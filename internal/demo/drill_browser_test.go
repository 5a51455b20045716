package demo

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/bantay-noc/bantay/internal/harness/pagetest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// TestDrillDownLeadsToTheTraceID opens a drill-down on the demo's page in
// Debian's headless Chromium with the probes recording both histogram
// forms (issue 12): its median comes from the native histogram, the path's
// exemplars are marked, and pointing at one shows its trace id, probe and
// target, and how to find it in Loki.
func TestDrillDownLeadsToTheTraceID(t *testing.T) {
	testenv.LongTest(t, "the demo in a real browser")
	pg := pagetest.Open(t, 3*time.Minute)
	opts := testOptions(t)
	opts.Histograms = "both"
	startDemo(t, opts)
	base := "http://" + opts.HTTPAddr
	const focus = "Manila|Davao|Globe|5g"
	pg.Must("open the page with a filled cell", chromedp.Do(pg.Ctx,
		chromedp.EmulateViewport(1366, 768),
		chromedp.Navigate(base+"/?wall=0"),
		chromedp.WaitVisible(pagetest.CellSelector(focus)+`[data-p50]`),
	))
	// A few probe intervals, so that the native series has a rate.
	time.Sleep(4 * opts.ProbeInterval)
	pg.Must("click the cell", chromedp.Do(pg.Ctx,
		chromedp.Click(chromedp.CSS(pagetest.CellSelector(focus))),
		chromedp.WaitVisible(`#drill[data-state=ready]`)))
	_, err := chromedp.Run(pg.Ctx, chromedp.Poll[bool](`drill.dataset.median === 'native' && Number(drill.dataset.exemplars) > 0 && drill.dataset.mark !== ''`,
		chromedp.WithPollingTimeout(75*time.Second)))
	pg.Must("wait for the native median and the exemplars of "+focus, err)
	mark, err := chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`drill.dataset.mark`))
	pg.Must("read the newest exemplar's mark", err)
	xs, ys, _ := strings.Cut(mark, ",")
	x, _ := strconv.ParseFloat(xs, 64)
	y, _ := strconv.ParseFloat(ys, 64)
	pg.Must("point at the exemplar", chromedp.Do(pg.Ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y)))
	_, err = chromedp.Run(pg.Ctx, chromedp.Poll[bool](`!tooltip.hidden && (tooltip.dataset.trace || '') !== ''`,
		chromedp.WithPollingTimeout(10*time.Second)))
	pg.Must("wait for the exemplar's tooltip", err)
	text, err := chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`tooltip.dataset.trace + '\n' + tooltip.innerText`))
	pg.Must("read the tooltip", err)
	id, body, _ := strings.Cut(text, "\n")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("exemplar trace id %q", id)
	}
	for _, want := range []string{"trace id", id, "mnl-01", "target", `trace_id="` + id + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("tooltip %q lacks %q", body, want)
		}
	}
	pg.Shot("demo-drilldown-exemplar-1366x768.png")
}
