package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// The outage and the probe interval of TestCollectorOutageIsMeasuredData.
// The mechanism does not depend on the outage's length up to the probes'
// queue.max_age (docs/RELIABILITY.md, "Collector outage"); a minute keeps
// the test short.
const (
	outageProbeInterval = 5 * time.Second
	outageLength        = 60 * time.Second
	// restarted is the probe restarted during the outage, and
	// outageStopBudget the longest its stop may take: the demo probes'
	// collector timeout (5s) plus the second the agent adds.
	restarted        = "bag-01"
	outageStopBudget = 6 * time.Second
)

// TestCollectorOutageIsMeasuredData stops the demo's collector for a
// minute while its probes keep measuring into their queues, restarts one
// probe (bag-01) in the middle of the outage, and starts the collector
// again on the same data dir. The outage must then be measured data, with
// the times it was measured at: in the store, every probe's series have no
// gap longer than two probe intervals across the outage; in the heatmap's
// drill-down, no two consecutive outage slots are empty and the outage's
// slots are marked late (and the slots before it are not); and citytag
// counts the late points per probe. The restarted probe measures nothing
// while it stops and starts: its stop waits up to its collector timeout
// (plus a second) for the final export before queueing it, so its bounds
// are wider by that much.
func TestCollectorOutageIsMeasuredData(t *testing.T) {
	testenv.LongTest(t, "collector outage end-to-end")
	opts := testOptions(t)
	opts.ProbeInterval = outageProbeInterval
	var col *Collector
	var probes *Probes
	opts.Collector = func(c *Collector) { col = c }
	opts.Probes = func(p *Probes) { probes = p }
	d := startDemo(t, opts)
	ctx := context.Background()
	client := promtest.NewClient("http://" + opts.HTTPAddr)
	base := "http://" + opts.HTTPAddr
	ids := map[string]bool{}
	for _, u := range netsim.DemoUplinks() {
		ids[u.Probe] = true
	}

	// Two exports of every probe before the outage, so the heatmap's cells
	// have slots observed before it.
	waitFor(t, d, "two stored exports of every probe", 60*time.Second, func() bool {
		res, err := client.Query(ctx, `count by (instance) (count_over_time(bantay_probe_attempts_total{method="udp"}[1m]) >= 2)`, time.Time{})
		return err == nil && res.Len() == len(ids)
	})

	down := time.Now()
	if err := col.Stop(); err != nil {
		t.Fatalf("stop the collector: %v", err)
	}
	time.Sleep(outageLength / 2)
	// A probe restarted during the outage keeps what it queued: the new
	// agent opens the same queue files.
	if err := probes.Stop(restarted); err != nil {
		t.Fatal(err)
	}
	if err := probes.Start(restarted); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outageLength / 2)
	up := time.Now()
	if err := col.Start(ctx); err != nil {
		t.Fatalf("start the collector again: %v", err)
	}
	t.Logf("collector down %s → %s", down.Format(time.RFC3339Nano), up.Format(time.RFC3339Nano))

	// The store: every series of every probe covers the outage with the
	// times its points were measured, no interval missing (the backlog
	// arrives within a few exports; the wait is bounded).
	maxGap := map[string]time.Duration{}
	for id := range ids {
		maxGap[id] = 2 * outageProbeInterval
	}
	maxGap[restarted] += outageStopBudget
	waitForNone(t, d, "the outage stored at the measured times", 2*time.Minute, func() []string {
		return storedOutageGaps(ctx, client, down, up, maxGap)
	})
	t.Logf("the outage is in the store %v after the collector was back", time.Since(up).Round(time.Second))

	// The heatmap: one cell per probe uplink (to its own city's reflector).
	waitForNone(t, d, "the outage in the heatmap's drill-down, marked late", time.Minute, func() []string {
		var problems []string
		for _, u := range netsim.DemoUplinks() {
			id := pathstate.CellKey{SrcCity: u.City, DstCity: u.City, Carrier: u.Carrier, NetworkType: u.NetworkType}.ID()
			maxEmpty := 1
			if u.Probe == restarted {
				maxEmpty += int(outageStopBudget / outageProbeInterval)
			}
			if p := drilldownOutage(base, id, down, up, opts.ProbeInterval, maxEmpty); p != "" {
				problems = append(problems, p)
			}
		}
		return problems
	})
	t.Logf("and in the drill-down %v after", time.Since(up).Round(time.Second))

	// citytag: the collector sees each probe's backlog as late points.
	late, err := latePoints(opts.TelemetryPort)
	if err != nil {
		t.Fatal(err)
	}
	for id := range ids {
		if late[id] == 0 {
			t.Errorf("bantay_citytag_late_points{probe=%q} = 0, want its backlog counted (%v)", id, late)
		}
	}
}

// waitForNone polls problems until it lists none (for at most limit),
// failing the test with the last list.
func waitForNone(t *testing.T, d *Running, what string, limit time.Duration, problems func() []string) {
	t.Helper()
	var last []string
	deadline := time.Now().Add(limit)
	for {
		if last = problems(); len(last) == 0 {
			return
		}
		select {
		case <-d.Exited():
			t.Fatalf("waiting for %s: the demo stopped: %v", what, d.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %v:\n%s", what, limit, strings.Join(last, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// storedOutageGaps lists, per series of the probes' UDP attempts, what is
// missing across [down, up]: a gap between consecutive samples longer than
// its probe's maxGap, or a probe that has no series there.
func storedOutageGaps(ctx context.Context, client *promtest.Client, down, up time.Time, maxGap map[string]time.Duration) []string {
	widest := slices.Max(slices.Collect(maps.Values(maxGap)))
	expr := fmt.Sprintf(`bantay_probe_attempts_total{method="udp"}[%ds]`, int((up.Sub(down)+2*widest).Seconds())+1)
	res, err := client.Query(ctx, expr, up.Add(widest))
	if err != nil {
		return []string{err.Error()}
	}
	m, ok := res.Value.(model.Matrix)
	if !ok {
		return []string{fmt.Sprintf("%s: %T, want a matrix", expr, res.Value)}
	}
	var problems []string
	seen := map[string]bool{}
	for _, s := range m {
		id := string(s.Metric["instance"])
		seen[id] = true
		limit := maxGap[id]
		prev := down.Add(-limit)
		for _, v := range append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(up.Add(limit).UnixNano())}) {
			at := v.Timestamp.Time()
			if at.Before(prev) {
				continue
			}
			if at.Sub(prev) > limit && at.After(down) && prev.Before(up) {
				problems = append(problems, fmt.Sprintf("%s: no sample from %s to %s", s.Metric, prev.Format(time.TimeOnly), at.Format(time.TimeOnly)))
				break
			}
			prev = at
		}
	}
	for id := range maxGap {
		if !seen[id] {
			problems = append(problems, id+": no series")
		}
	}
	return problems
}

// drillColumn is what the test reads of a drill-down column.
type drillColumn struct {
	T     int64 `json:"t"`
	Count int   `json:"count"`
	Late  int   `json:"late"`
}

// drilldownOutage checks cell id's drill-down over the outage: no more than
// maxEmpty consecutive empty slots in it, some of its slots late, none of
// the slots before it late. It returns what is wrong, or "".
func drilldownOutage(base, id string, down, up time.Time, res time.Duration, maxEmpty int) string {
	resp, err := http.Get(base + "/api/heatmap/drilldown?cell=" + url.QueryEscape(id))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var drill struct {
		Columns []drillColumn `json:"columns"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&drill); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%s: HTTP %d, %v", id, resp.StatusCode, err)
	}
	// Whole slots inside the outage: the ones at its edges hold exports
	// from before and after it.
	from, to := down.Add(res).UnixMilli(), up.Add(-res).UnixMilli()
	empty, late, lateBefore := 0, 0, 0
	for _, c := range drill.Columns {
		switch {
		case c.T+res.Milliseconds() <= down.UnixMilli():
			lateBefore += c.Late
		case c.T >= from && c.T+res.Milliseconds() <= to:
			if c.Count == 0 {
				empty++
				if empty > maxEmpty {
					return fmt.Sprintf("%s: %d consecutive empty slots in the outage, the last at %s", id, empty, time.UnixMilli(c.T).Format(time.TimeOnly))
				}
				continue
			}
			empty = 0
			if c.Late > 0 {
				late++
			}
		}
	}
	switch {
	case late == 0:
		return id + ": no outage slot marked late"
	case lateBefore > 0:
		return fmt.Sprintf("%s: %d late points in slots before the outage", id, lateBefore)
	}
	return ""
}

// latePoints reads bantay_citytag_late_points by probe from the
// collector's own telemetry.
func latePoints(telemetryPort int) (map[string]float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", telemetryPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	late := map[string]float64{}
	if f := mf["bantay_citytag_late_points"]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "probe" {
					late[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return late, nil
}
