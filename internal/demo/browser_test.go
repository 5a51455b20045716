package demo

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/harness/pagetest"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// TestDemoInBrowser opens the NOC page served by the running demo (real
// probes, real collector) in Debian's headless Chromium, waits for live
// updates, checks that every cell's numbers equal the Prometheus API's answer
// for the same window, opens a drill-down by clicking a cell, and saves
// screenshots in wall mode and at laptop size.
func TestDemoInBrowser(t *testing.T) {
	testenv.LongTest(t, "the demo in a real browser")
	pg := pagetest.Open(t, 4*time.Minute)
	opts := testOptions(t)
	ctx := context.Background()
	d := startDemo(t, opts)
	started := time.Now()
	defer func() {
		if err := d.Stop(time.Minute); err != nil {
			t.Errorf("demo did not stop cleanly: %v", err)
		}
	}()
	base := "http://" + opts.HTTPAddr
	cells := len(netsim.DemoUplinks()) * len(netsim.DemoCities())

	// The 1 m window, so that the comparison below can start once every
	// series has a sample from before the window (see comparable).
	const focus = "Manila|Davao|Globe|5g"
	pg.Must("open the demo's page in wall mode", chromedp.Do(pg.Ctx,
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Navigate(base+"/?wall=1&window=1m"),
		chromedp.WaitVisible(pagetest.CellSelector(focus)+`[data-p50]`),
	))
	_, err := chromedp.Run(pg.Ctx, chromedp.Poll[bool](
		fmt.Sprintf(`document.querySelectorAll('#matrix [role=gridcell][data-p50]').length === %d`, cells),
		chromedp.WithPollingTimeout(60*time.Second)))
	pg.Must(fmt.Sprintf("wait for all %d paths on the page", cells), err)

	// Live: the page moves on by itself as the probes measure.
	first, err := chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`app.dataset.windowTo`))
	pg.Must("read the window", err)
	_, err = chromedp.Run(pg.Ctx, chromedp.Poll[bool](`app.dataset.windowTo !== `+strconv.Quote(first),
		chromedp.WithPollingTimeout(15*time.Second)))
	pg.Must("wait for a live update", err)

	// Every number equals what Prometheus answers for the window the page
	// shows. Before the comparison can be exact, every series needs a sample
	// from before the window's start (the PromQL difference has nothing to
	// subtract for a series born inside the window, the heatmap counts it).
	if wait := time.Until(started.Add(time.Minute + 5*opts.ProbeInterval)); wait > 0 {
		time.Sleep(wait)
	}
	client := promtest.NewClient(base)
	var diffs []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		view, err := pg.Read()
		pg.Must("read the grid", err)
		diffs = comparable(ctx, client, view, cells)
		if len(diffs) == 0 {
			break
		}
		// A frame can be a tick older than the store's newest sample; the
		// next one agrees. A lasting difference fails.
		if time.Now().After(deadline) {
			t.Fatalf("the page and the Prometheus API disagree:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The demo's page offers the incident button (served by the demo's
	// /demo/incident; a deployment's page does not show it, web/).
	_, err = chromedp.Run(pg.Ctx, chromedp.Poll[bool](`!document.getElementById('incident').hidden && incident.dataset.state === 'idle'`,
		chromedp.WithPollingTimeout(15*time.Second)))
	pg.Must("wait for the incident button", err)
	pg.Shot("demo-wall-1920x1080.png")

	// Laptop size: click a cell, the drill-down fills with what the path
	// measured since the demo started and keeps updating.
	pg.Must("open the demo's page on a laptop screen", chromedp.Do(pg.Ctx,
		chromedp.EmulateViewport(1366, 768),
		chromedp.Navigate(base+"/?wall=0"),
		chromedp.WaitVisible(pagetest.CellSelector(focus)+`[data-p50]`),
	))
	pg.Shot("demo-laptop-1366x768.png")
	pg.Must("click a cell", chromedp.Do(pg.Ctx,
		chromedp.Click(chromedp.CSS(pagetest.CellSelector(focus))),
		chromedp.WaitVisible(`#drill[data-state=ready]`)))
	_, err = chromedp.Run(pg.Ctx, chromedp.Poll[bool](`drill.dataset.id === `+strconv.Quote(focus)+
		` && Number(drill.dataset.filled) >= 10 && Number(drill.dataset.updates) > 0`,
		chromedp.WithPollingTimeout(15*time.Second)))
	pg.Must("wait for a filled, live drill-down of "+focus, err)
	pg.Shot("demo-laptop-drilldown-1366x768.png")
}

// comparable compares every cell the page shows with the Prometheus API at
// the end of the page's window, using the query docs/heatmap.md gives for
// "the same question": the difference of the cumulative series between the
// window's end and just before its start. It returns the differences.
func comparable(ctx context.Context, client *promtest.Client, view pagetest.View, cells int) []string {
	from, err1 := strconv.ParseInt(view.WindowFrom, 10, 64)
	to, err2 := strconv.ParseInt(view.WindowTo, 10, 64)
	if err1 != nil || err2 != nil {
		return []string{fmt.Sprintf("the page shows no window (%q, %q)", view.WindowFrom, view.WindowTo)}
	}
	if len(view.Cells) != cells {
		return []string{fmt.Sprintf("the page shows %d cells, want %d", len(view.Cells), cells)}
	}
	at := time.UnixMilli(to)
	var diffs []string
	for _, c := range view.Cells {
		parts := strings.Split(c.ID, "|")
		if len(parts) != 4 {
			return []string{"bad cell id " + c.ID}
		}
		labels := fmt.Sprintf(`src_city=%q,dst_city=%q,carrier=%q,network_type=%q`, parts[0], parts[1], parts[2], parts[3])
		inWindow := func(metric string) string {
			sel := metric + "{" + labels + "}"
			if strings.HasPrefix(metric, "network_latency") {
				// The cell is the totals; the demo's http targets also
				// record their phases under this name.
				sel = metric + "{" + labels + `,phase=""}`
			}
			return fmt.Sprintf("(%s - %s offset %dms)", sel, sel, to-from+1)
		}
		queries := map[string]string{
			"p50":    `histogram_quantile(0.5, sum by (le) ` + inWindow("network_latency_milliseconds_bucket") + `)`,
			"p90":    `histogram_quantile(0.9, sum by (le) ` + inWindow("network_latency_milliseconds_bucket") + `)`,
			"p99":    `histogram_quantile(0.99, sum by (le) ` + inWindow("network_latency_milliseconds_bucket") + `)`,
			"mean":   `sum ` + inWindow("network_latency_milliseconds_sum") + ` / sum ` + inWindow("network_latency_milliseconds_count"),
			"count":  `sum ` + inWindow("network_latency_milliseconds_count"),
			"loss":   `sum ` + inWindow("bantay_probe_failures_total") + ` / sum ` + inWindow("bantay_probe_attempts_total"),
			"jitter": `sum ` + inWindow("bantay_probe_jitter_milliseconds_total") + ` / sum ` + inWindow("bantay_probe_jitter_pairs_total"),
		}
		page := map[string]string{"p50": c.P50, "p90": c.P90, "p99": c.P99, "mean": c.Mean, "count": c.Count, "loss": c.Loss, "jitter": c.Jitter}
		for stat, q := range queries {
			res, err := client.Query(ctx, q, at)
			if err != nil {
				return []string{fmt.Sprintf("%s: %v", q, err)}
			}
			vec, err := res.Vector()
			if err != nil || len(vec) != 1 {
				diffs = append(diffs, fmt.Sprintf("%s %s: Prometheus gave %v (%v) for %s", c.ID, stat, res, err, q))
				continue
			}
			want := float64(vec[0].Value)
			got, err := strconv.ParseFloat(page[stat], 64)
			// The heatmap rounds to 1 µs (and loss to 1e-6).
			if err != nil || math.Abs(got-want) > 1e-3 {
				diffs = append(diffs, fmt.Sprintf("%s %s: page %q, Prometheus %v (%s at %d)", c.ID, stat, page[stat], want, q, to))
			}
		}
	}
	return diffs
}
