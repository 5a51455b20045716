package eventstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/demo"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/victorialogs"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// warmUp is how long the path the test degrades measures normally first.
// The heatmap judges "degraded" against the path's own baseline p95 over
// its history, and that history includes the degraded samples: those that
// arrive before the judgement (two exports' worth with the 1.5 s hold, at
// most 4 samples: a UDP echo and an HTTP check a second) must stay under
// 5 % of it, or the baseline rises with the incident. 50 s of normal
// history (100 samples) leaves a margin.
const warmUp = 50 * time.Second

// stageLimit bounds each wait for an event to arrive in VictoriaLogs.
const stageLimit = 45 * time.Second

// TestDemoEventsReachLoki runs the demo (real collector, three real probes,
// impaired real targets) with its events pipeline pushing to VictoriaLogs,
// an independently written receiver of Loki's push protocol, stages
// incidents on the demo network and reads the events back with LogsQL:
//
//   - Baguio's probe goes offline and comes back: path_stale, then path_back,
//     for each of its six paths;
//   - Manila's PLDT fiber loses (nearly) every packet to Davao for a while:
//     the UDP echoes time out and the failure_events connector reports the
//     storm as one probe_failure burst with reason=timeout;
//   - Davao → Manila on PLDT fiber slows from ~30 ms to 250 ms and is
//     restored: path_degraded (p95 before and after), then path_recovered;
//   - the rules loaded at start and an operator's reload (POST /-/reload)
//     arrive as rules_reloaded;
//   - OTLP data with bad tags (a registered probe naming an unknown city, an
//     unregistered probe) is rejected by citytag: one probe_rejected each,
//     and the request answered HTTP 400 naming the rejections.
//
// It asserts the exact, bounded label set of every stream (service, kind,
// src_city, carrier, island_group, with the gazetteer's island group), the
// structured metadata (probe, dst_city, network_type, target, reason, the
// numbers) and the order of each path's state changes.
func TestDemoEventsReachLoki(t *testing.T) {
	testenv.LongTest(t, "end-to-end demo run")
	vl := victorialogs.Start(t)

	opts := demoOptions(t)
	opts.LokiURL = vl.PushURL()
	// The shipped heatmap judges over 5 minutes with a 30 s hold, right
	// for a NOC and far too slow for a test. These keep the logic and
	// scale the times: a 10 s events window (20 samples), judged every
	// 100 ms with a 1.5 s hold. The hold must outlast one probe interval:
	// within each interval the window's sample count dips while the
	// current slot waits for the next export, and a single slow sample
	// (a TCP retransmission on a lossy 4G path) is then above the window's
	// p95 for a moment; a shorter hold turns that into a flap a second.
	// On a busy 2-core machine running -race, scheduling alone adds tens
	// of ms to a few samples of a 30 ms loopback "path": a degradation
	// must be at least 50 ms above the baseline (shipped: 10 ms); the
	// staged one adds 220 ms. Stale after 3 silent intervals rather than
	// 2, so that a 1 s probe export delayed by the machine is no outage.
	opts.Heatmap = map[string]any{
		"stale_after":        3,
		"broadcast_interval": "100ms",
		"windows":            []string{"10s", "1m", "5m"},
		"default_window":     "1m",
		"events":             map[string]any{"window": "10s", "hold": "1500ms", "degraded_min_delta_ms": 50},
	}
	var tables map[string]*netsim.Table
	opts.Network = func(m map[string]*netsim.Table) { tables = m }
	var probes *demo.Probes
	opts.Probes = func(p *demo.Probes) { probes = p }

	ctx := context.Background()
	d, err := demo.Start(opts, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Stop the demo before VictoriaLogs and the temp dirs go (cleanups).
	defer func() { _ = d.Stop(time.Minute) }()
	w := &watcher{t: t, vl: vl, demo: d}

	// Every path measures before anything is staged, so that each cell
	// exists in the heatmap and has learnt its probe interval.
	waitAllPaths(t, ctx, "http://"+opts.HTTPAddr, d)
	warmStart := time.Now()

	timeoutUp := demoUplink(t, "mnl-01", "PLDT") // Manila, PLDT fiber
	slowUp := demoUplink(t, "dvo-01", "PLDT")    // Davao, PLDT fiber
	baguio := "bag-01"

	// Stage 1: Manila's PLDT fiber loses (nearly) everything to Davao, and
	// Baguio's probe goes offline.
	timeoutNormal, err := netsim.DemoProfile(timeoutUp, "Davao")
	if err != nil {
		t.Fatal(err)
	}
	lossy := timeoutNormal
	lossy.Loss = 0.9999 // a Profile's loss must stay below 1
	if err := tables["Davao"].Set(timeoutUp.Addr, lossy); err != nil {
		t.Fatal(err)
	}
	outageAt := time.Now()
	if err := probes.Stop(baguio); err != nil {
		t.Fatalf("stop %s: %v", baguio, err)
	}
	stoppedAt := time.Now()
	// The collector's own events: an operator reloads the alert rules, and
	// citytag rejects data with bad tags (a registered probe naming a city
	// the gazetteer does not know; a probe the registry does not know).
	reloadAt := time.Now()
	reloadRules(t, "http://"+opts.HTTPAddr)
	rejectAt := time.Now()
	sendBadTags(t, "http://"+opts.OTLPHTTPAddr, probes, timeoutUp)

	w.waitFor("probe_rejected for the bad tags", `_stream:{kind="probe_rejected"}`, func(evs []event) bool {
		return len(evs) >= 2
	})
	baguioCells := cellsOf(baguio)
	w.waitFor("path_stale for each of Baguio's paths", `_stream:{kind="path_stale",src_city="Baguio"}`, func(evs []event) bool {
		return len(cellsAfter(evs, stoppedAt)) == len(baguioCells)
	})
	lossCell := cell{"Manila", "Davao", timeoutUp.Carrier, timeoutUp.NetworkType}
	w.waitFor("path_degraded (loss) for "+lossCell.String(), `_stream:{kind="path_degraded",src_city="Manila"}`, func(evs []event) bool {
		return len(ofCell(evs, lossCell)) > 0
	})
	// Let the storm last a few probe intervals, so that it is a burst of
	// several timeouts folded into one event, not a single failure.
	if d := 5*time.Second - time.Since(outageAt); d > 0 {
		time.Sleep(d)
	}

	// Stage 2: Baguio's probe comes back; Manila → Davao heals.
	restartAt := time.Now()
	if err := probes.Start(baguio); err != nil {
		t.Fatalf("start %s again: %v", baguio, err)
	}
	if err := tables["Davao"].Set(timeoutUp.Addr, timeoutNormal); err != nil {
		t.Fatal(err)
	}
	w.waitFor("path_back for each of Baguio's paths", `_stream:{kind="path_back",src_city="Baguio"}`, func(evs []event) bool {
		return len(cellsAfter(evs, restartAt)) == len(baguioCells)
	})
	w.waitFor("the timeout burst of mnl-01 to mesh-dvo-01-udp", `_stream:{kind="probe_failure",src_city="Manila"}`, func(evs []event) bool {
		return len(timeoutBursts(evs)) > 0
	})

	// Stage 3: Davao → Manila on PLDT fiber slows to 250 ms, then heals.
	if d := warmUp - time.Since(warmStart); d > 0 {
		time.Sleep(d)
	}
	slowNormal, err := netsim.DemoProfile(slowUp, "Manila")
	if err != nil {
		t.Fatal(err)
	}
	slow := slowNormal
	slow.Base = 250 * time.Millisecond
	// The incident must start from a healthy path, or the hysteresis has
	// nothing to report.
	slowCell := cell{"Davao", "Manila", slowUp.Carrier, slowUp.NetworkType}
	waitHeatmap(t, ctx, "http://"+opts.HTTPAddr, d, slowCell.String()+" ok", func(cells map[cell]snapshotCell) bool {
		return cells[slowCell].State == "ok"
	})
	if err := tables["Manila"].Set(slowUp.Addr, slow); err != nil {
		t.Fatal(err)
	}
	slowAt := time.Now()
	var degradedAt time.Time
	w.waitFor("path_degraded for "+slowCell.String(), `_stream:{kind="path_degraded",src_city="Davao"}`, func(evs []event) bool {
		for _, e := range ofCell(evs, slowCell) {
			if e.time().After(slowAt) {
				degradedAt = e.time()
				return true
			}
		}
		return false
	})
	if err := tables["Manila"].Set(slowUp.Addr, slowNormal); err != nil {
		t.Fatal(err)
	}
	w.waitFor("path_recovered for "+slowCell.String(), `_stream:{kind="path_recovered",src_city="Davao"}`, func(evs []event) bool {
		return len(cellsAfter(ofCell(evs, slowCell), degradedAt)) > 0
	})

	// A clean shutdown hands on what the receivers, the connector and the
	// exporter's queue still hold.
	if err := d.Stop(time.Minute); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
	qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer qcancel()
	rows, err := vl.Query(qctx, `* | sort by (_time)`)
	if err != nil {
		t.Fatal(err)
	}
	all := toEvents(rows)
	perKind := map[string]int{}
	for _, e := range all {
		perKind[e.str("kind")]++
	}
	t.Logf("%d events in VictoriaLogs: %v", len(all), perKind)

	checkLabels(t, all)
	checkStaleAndBack(t, all, baguioCells, stoppedAt, restartAt)
	checkTimeoutBurst(t, all, outageAt)
	checkLossDegraded(t, all, lossCell, outageAt)
	checkDegradedPair(t, all, slowCell, slowAt)
	checkRulesReloaded(t, all, reloadAt)
	checkProbeRejected(t, all, rejectAt, timeoutUp)
	if t.Failed() {
		for _, e := range all {
			t.Logf("%s %-14s %-36s %-20q %s", e.str("_time"), e.str("kind"), e.cell(), e.str("reason"), e.msg())
		}
	}
}

// checkLabels: every stream has only the bounded labels, and those that
// place an event say where the probe is.
func checkLabels(t *testing.T, all []event) {
	t.Helper()
	allowed := []string{"carrier", "island_group", "kind", "service", "src_city"}
	gaz := gazetteer.Default()
	for _, e := range all {
		labels := e.labels()
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		kind := e.str("kind")
		switch {
		case kind == "probe_failure" || strings.HasPrefix(kind, "path_"):
			if !slices.Equal(keys, allowed) {
				t.Errorf("%s: labels %v, want exactly %v (stream %s)", kind, keys, allowed, e.str("_stream"))
			}
		default:
			for _, k := range keys {
				if !slices.Contains(allowed, k) {
					t.Errorf("%s: label %q outside the bounded set %v (stream %s)", kind, k, allowed, e.str("_stream"))
				}
			}
		}
		if labels["service"] != "bantay" || labels["kind"] != kind || kind == "" {
			t.Errorf("stream %s: service/kind labels wrong", e.str("_stream"))
		}
		if src := labels["src_city"]; src != "" {
			city, ok := gaz.City(src)
			if !ok || labels["island_group"] != city.IslandGroup {
				t.Errorf("%s: src_city %q with island_group %q, gazetteer says %q", kind, src, labels["island_group"], city.IslandGroup)
			}
			// A rejection names the probe's city, and the carrier of the
			// uplink the data came on when the gazetteer knows it (the
			// staged ones come on registered uplinks).
			if _, has := labels["carrier"]; (has || kind != "probe_rejected") && !slices.ContainsFunc(netsim.DemoUplinks(), func(u netsim.DemoUplink) bool {
				return u.City == src && u.Carrier == labels["carrier"]
			}) {
				t.Errorf("%s: carrier %q is not an uplink of the probe in %s", kind, labels["carrier"], src)
			}
		}
		if strings.HasPrefix(kind, "path_") && e.has("probe") {
			t.Errorf("%s names probe %q although a path aggregates every probe measuring it", kind, e.str("probe"))
		}
	}
}

// checkStaleAndBack: each of the offline probe's paths went stale after the
// probe stopped and came back after it started again, in that order.
func checkStaleAndBack(t *testing.T, all []event, cells []cell, stoppedAt, restartAt time.Time) {
	t.Helper()
	for _, c := range cells {
		var seq []string
		var stale, back event
		for _, e := range ofCell(all, c) {
			if k := e.str("kind"); (k == "path_stale" || k == "path_back") && e.time().After(stoppedAt) {
				seq = append(seq, k)
				if k == "path_stale" && stale == nil {
					stale = e
				}
				if k == "path_back" && back == nil {
					back = e
				}
			}
		}
		if !slices.Equal(seq, []string{"path_stale", "path_back"}) {
			t.Errorf("%s after the probe stopped: %v, want [path_stale path_back]", c, seq)
			continue
		}
		if back.time().Before(restartAt) {
			t.Errorf("%s: path_back at %s, before the probe was started again at %s", c, back.time(), restartAt)
		}
		if !strings.HasPrefix(stale.str("reason"), "no data for ") || back.str("reason") != "data again" {
			t.Errorf("%s: reasons %q / %q", c, stale.str("reason"), back.str("reason"))
		}
		if stale.str("level") != "warn" || back.str("level") != "info" {
			t.Errorf("%s: levels %q / %q, want warn / info", c, stale.str("level"), back.str("level"))
		}
		if !strings.Contains(stale.msg(), c.SrcCity+" → "+c.DstCity+" on "+c.Carrier+" "+c.NetworkType+" stale: no data for") {
			t.Errorf("%s: stale line %q", c, stale.msg())
		}
	}
}

// checkTimeoutBurst: the storm of UDP timeouts is exactly one event, placed
// and described in full.
func checkTimeoutBurst(t *testing.T, all []event, outageAt time.Time) {
	t.Helper()
	bursts := timeoutBursts(all)
	if len(bursts) != 1 {
		t.Errorf("%d probe_failure events for mnl-01 over PLDT fiber → mesh-dvo-01-udp, want one burst: %v", len(bursts), bursts)
		if len(bursts) == 0 {
			return
		}
	}
	b := bursts[0]
	if got, want := b.str("_stream"), `{carrier="PLDT",island_group="Luzon",kind="probe_failure",service="bantay",src_city="Manila"}`; got != want {
		t.Errorf("timeout burst stream %s, want %s", got, want)
	}
	for k, want := range map[string]string{
		"probe": "mnl-01", "dst_city": "Davao", "network_type": "fiber", "target": "mesh-dvo-01-udp",
		"method": "udp", "reason": "timeout", "error": "no answer within the probe timeout", "level": "warn",
	} {
		if got := b.str(k); got != want {
			t.Errorf("timeout burst: %s = %q, want %q", k, got, want)
		}
	}
	// Several timeouts in one event: the storm lasted at least 5 probe
	// intervals (the test holds it that long).
	if n := b.num(t, "count"); n < 3 {
		t.Errorf("timeout burst count %v, want the storm's several timeouts folded into one event", n)
	}
	first, err1 := time.Parse(time.RFC3339Nano, b.str("first_time"))
	last, err2 := time.Parse(time.RFC3339Nano, b.str("last_time"))
	if err1 != nil || err2 != nil || last.Before(first) || !first.After(outageAt) {
		t.Errorf("timeout burst first_time %q, last_time %q: want first after the loss was set (%s) and first ≤ last",
			b.str("first_time"), b.str("last_time"), outageAt.UTC().Format(time.RFC3339Nano))
	}
	if !b.time().Equal(first) {
		t.Errorf("timeout burst _time %s, want its first failure %s", b.time(), first)
	}
}

// checkLossDegraded: the path whose echoes timed out degraded on loss.
func checkLossDegraded(t *testing.T, all []event, c cell, outageAt time.Time) {
	t.Helper()
	var deg event
	for _, e := range ofKind(ofCell(all, c), "path_degraded") {
		if e.time().After(outageAt) {
			deg = e
			break
		}
	}
	if deg == nil {
		t.Errorf("%s: no path_degraded after the loss was set", c)
		return
	}
	// HTTP through the lossy path still answers (late, after TCP
	// retransmissions), so latency may be part of the reason too.
	if !strings.Contains(deg.str("reason"), "loss") || deg.num(t, "loss_ratio") < 0.05 {
		t.Errorf("%s degraded with reason %q and loss_ratio %s, want loss of at least 5%%", c, deg.str("reason"), deg.str("loss_ratio"))
	}
}

// checkRulesReloaded: the rules in force at start and the operator's
// reload both arrived with their counts, filed under the service's stream
// only (they are not about a place).
func checkRulesReloaded(t *testing.T, all []event, reloadAt time.Time) {
	t.Helper()
	evs := ofKind(all, "rules_reloaded")
	if len(evs) != 2 || !evs[0].time().Before(reloadAt) || evs[1].time().Before(reloadAt) {
		t.Errorf("rules_reloaded events %v, want one at start and one for the reload at %s", evs, reloadAt)
		return
	}
	for _, e := range evs {
		if got, want := e.str("_stream"), `{kind="rules_reloaded",service="bantay"}`; got != want {
			t.Errorf("rules_reloaded stream %s, want %s", got, want)
		}
		if e.str("level") != "info" || e.num(t, "groups") < 1 || e.num(t, "rules") < 1 {
			t.Errorf("rules_reloaded at %s: level %q, %s groups, %s rules; want info and the shipped rules",
				e.time(), e.str("level"), e.str("groups"), e.str("rules"))
		}
	}
	if evs[0].str("rules") != evs[1].str("rules") {
		t.Errorf("the reload of unchanged rule files reports %s rules, the start %s", evs[1].str("rules"), evs[0].str("rules"))
	}
}

// checkProbeRejected: each bad-tag rejection is one event, filed in the
// stream of the probe's city when the probe is registered (with no city
// when it is not) and of the uplink's carrier, with the network type, the
// reason and the detail as structured metadata.
func checkProbeRejected(t *testing.T, all []event, rejectAt time.Time, up netsim.DemoUplink) {
	t.Helper()
	byProbe := map[string][]event{}
	for _, e := range ofKind(all, "probe_rejected") {
		byProbe[e.str("probe")] = append(byProbe[e.str("probe")], e)
	}
	for _, want := range []struct {
		probe, stream, reason, errPart string
	}{
		{up.Probe, `{carrier="` + up.Carrier + `",island_group="Luzon",kind="probe_rejected",service="bantay",src_city="Manila"}`, "unknown_dst_city", `"Atlantis"`},
		{unknownProbe, `{carrier="` + up.Carrier + `",kind="probe_rejected",service="bantay"}`, "unknown_probe", "not in the citytag registry"},
	} {
		evs := byProbe[want.probe]
		if len(evs) != 1 {
			t.Errorf("probe_rejected for %s: %d events, want 1 (got %v)", want.probe, len(evs), byProbe)
			continue
		}
		e := evs[0]
		if got := e.str("_stream"); got != want.stream {
			t.Errorf("probe_rejected for %s: stream %s, want %s", want.probe, got, want.stream)
		}
		if e.str("reason") != want.reason || !strings.Contains(e.str("error"), want.errPart) || e.str("level") != "warn" {
			t.Errorf("probe_rejected for %s: reason %q, error %q, level %q; want %s, an error naming %s, warn",
				want.probe, e.str("reason"), e.str("error"), e.str("level"), want.reason, want.errPart)
		}
		if e.str("network_type") != up.NetworkType {
			t.Errorf("probe_rejected for %s: network_type %q, want %q", want.probe, e.str("network_type"), up.NetworkType)
		}
		if e.num(t, "points") < 1 || e.time().Before(rejectAt) {
			t.Errorf("probe_rejected for %s: %s points at %s (sent at %s)", want.probe, e.str("points"), e.time(), rejectAt)
		}
		if !strings.Contains(e.msg(), "rejected ("+want.reason+")") {
			t.Errorf("probe_rejected for %s: line %q", want.probe, e.msg())
		}
	}
}

// unknownProbe is a probe id the demo's registry does not have.
const unknownProbe = "zzz-99"

// sendBadTags posts OTLP/HTTP metrics the collector's citytag must reject,
// as a misconfigured probe would send them: the registered probe of up on
// its registered uplink naming a destination city the gazetteer does not
// know, and a probe the registry does not know. The request is answered
// HTTP 400 naming the rejections: the sender learns nothing was stored.
func sendBadTags(t *testing.T, base string, probes *demo.Probes, up netsim.DemoUplink) {
	t.Helper()
	// As up's probe, which the collector authenticates: the unknown probe
	// then reaches citytag's registry check rather than probeauth's.
	client, err := probes.Client(up.Probe, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	now := time.Now()
	for _, probe := range []string{up.Probe, unknownProbe} {
		dp := otlpload.AppendAttempts(md, map[string]string{
			"service.name": "bantay-probe", "service.instance.id": probe,
			"bantay.uplink.carrier": up.Carrier, "bantay.uplink.network_type": up.NetworkType,
		}, now)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		dp.SetIntValue(1)
		dp.Attributes().PutStr("dst_city", "Atlantis")
	}
	a, err := otlpload.PostHTTP(context.Background(), client, base, md)
	if err != nil {
		t.Fatalf("send bad tags: %v", err)
	}
	// Permanent InvalidArgument: HTTP 400, in citytag's words.
	for _, want := range []string{
		"citytag rejected 2 of 2 points; first: unknown_dst_city (probe " + up.Probe + `): dst_city "Atlantis" is not in the gazetteer`,
		"unknown_probe 1",
	} {
		if a.Status != http.StatusBadRequest || !strings.Contains(a.Message, want) {
			t.Fatalf("send bad tags: HTTP %d %q, want 400 with %q", a.Status, a.Message, want)
		}
	}
}

// checkDegradedPair: the slowed path degraded on latency after the test
// slowed it, then recovered, with the numbers that show why. Degraded and
// recovered must alternate over the whole run (the hysteresis never
// reports the same state twice); a path of the real demo network may have
// flapped before the incident, so the staged pair is the last one.
func checkDegradedPair(t *testing.T, all []event, c cell, slowAt time.Time) {
	t.Helper()
	var seq []event
	for _, e := range ofCell(all, c) {
		if k := e.str("kind"); k == "path_degraded" || k == "path_recovered" {
			seq = append(seq, e)
		}
	}
	kinds := kindsOf(seq)
	for i, k := range kinds {
		if want := []string{"path_degraded", "path_recovered"}[i%2]; k != want {
			t.Errorf("%s: %v in time order, want degraded and recovered alternating", c, kinds)
			return
		}
	}
	if len(seq) < 2 || len(seq)%2 != 0 {
		t.Errorf("%s: %v in time order, want a path_degraded then a path_recovered", c, kinds)
		return
	}
	deg, rec := seq[len(seq)-2], seq[len(seq)-1]
	if len(seq) > 2 {
		t.Logf("%s flapped %d times before the staged incident (demo network noise)", c, len(seq)/2-1)
	}
	if !deg.time().After(slowAt) {
		t.Errorf("%s: last path_degraded at %s, before the path was slowed at %s", c, deg.time(), slowAt)
	}
	for _, e := range []event{deg, rec} {
		if got, want := e.str("_stream"), fmt.Sprintf(`{carrier="PLDT",island_group="Mindanao",kind="%s",service="bantay",src_city="Davao"}`, e.str("kind")); got != want {
			t.Errorf("%s stream %s, want %s", e.str("kind"), got, want)
		}
		for k, want := range map[string]string{"dst_city": "Manila", "dst_island_group": "Luzon", "network_type": "fiber", "window": "10s"} {
			if got := e.str(k); got != want {
				t.Errorf("%s: %s = %q, want %q", e.str("kind"), k, got, want)
			}
		}
		if e.num(t, "samples") < 5 {
			t.Errorf("%s judged on %v samples, below min_samples", e.str("kind"), e.str("samples"))
		}
		if l := e.num(t, "loss_ratio"); l >= 0.05 {
			t.Errorf("%s: loss_ratio %v on a path that only slowed down", e.str("kind"), l)
		}
	}
	before, after := deg.num(t, "p95_before_ms"), deg.num(t, "p95_after_ms")
	if deg.str("reason") != "latency" || deg.str("level") != "warn" {
		t.Errorf("path_degraded reason %q level %q, want latency / warn", deg.str("reason"), deg.str("level"))
	}
	// The path's baseline p95 is about 40 ms (a 30 ms round trip, a little
	// more for HTTP); the incident put 250 ms on every round trip.
	if !(before > 0 && before < 150 && after >= 200 && after > 1.5*before) {
		t.Errorf("path_degraded p95 %v → %v ms, want a baseline under 150 ms and at least 200 ms after", before, after)
	}
	if rb, ra := rec.num(t, "p95_before_ms"), rec.num(t, "p95_after_ms"); rb != before || ra >= after || !(ra <= 1.2*rb || ra-rb < 50) {
		t.Errorf("path_recovered p95 %v (baseline %v), want back near the baseline frozen at degradation (%v)", ra, rb, before)
	}
	if rec.str("reason") != "back near baseline" || rec.str("level") != "info" {
		t.Errorf("path_recovered reason %q level %q", rec.str("reason"), rec.str("level"))
	}
	if !strings.Contains(deg.msg(), "Davao → Manila on PLDT fiber degraded (latency): p95 ") {
		t.Errorf("path_degraded line %q", deg.msg())
	}
}

// timeoutBursts are the probe_failure events of the staged storm.
// timeoutBursts are the failure events of the staged storm's uplink (mnl-01
// over PLDT fiber → mesh-dvo-01-udp). The same probe's other uplink to
// Davao has the demo's own occasional loss, and with rounds of five probes
// it reports a stray timeout now and then: that is not the storm.
func timeoutBursts(evs []event) []event {
	var out []event
	for _, e := range evs {
		if e.str("kind") == "probe_failure" && e.str("probe") == "mnl-01" && e.str("target") == "mesh-dvo-01-udp" &&
			e.str("carrier") == "PLDT" && e.str("network_type") == "fiber" {
			out = append(out, e)
		}
	}
	return out
}

// cell is a heatmap cell, the unit of path events.
type cell struct{ SrcCity, DstCity, Carrier, NetworkType string }

func (c cell) String() string {
	return fmt.Sprintf("%s → %s on %s %s", c.SrcCity, c.DstCity, c.Carrier, c.NetworkType)
}

// cellsOf are the paths a demo probe measures.
func cellsOf(probe string) []cell {
	var out []cell
	for _, u := range netsim.DemoUplinks() {
		if u.Probe == probe {
			for _, dst := range netsim.DemoCities() {
				out = append(out, cell{u.City, dst, u.Carrier, u.NetworkType})
			}
		}
	}
	return out
}

// cellsAfter are the distinct cells of events decided after t.
func cellsAfter(evs []event, t time.Time) map[cell]bool {
	out := map[cell]bool{}
	for _, e := range evs {
		if e.time().After(t) {
			out[e.cell()] = true
		}
	}
	return out
}

func ofCell(evs []event, c cell) []event {
	var out []event
	for _, e := range evs {
		if e.cell() == c {
			out = append(out, e)
		}
	}
	return out
}

func ofKind(evs []event, kind string) []event {
	var out []event
	for _, e := range evs {
		if e.str("kind") == kind {
			out = append(out, e)
		}
	}
	return out
}

func kindsOf(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.str("kind")
	}
	return out
}

func demoUplink(t *testing.T, probe, carrier string) netsim.DemoUplink {
	t.Helper()
	for _, u := range netsim.DemoUplinks() {
		if u.Probe == probe && u.Carrier == carrier {
			return u
		}
	}
	t.Fatalf("the demo has no uplink %s of probe %s", carrier, probe)
	return netsim.DemoUplink{}
}

// event is one entry as VictoriaLogs returns it: _time, _msg, _stream, the
// stream labels and the structured metadata, all as strings.
type event map[string]any

func toEvents(rows []map[string]any) []event {
	out := make([]event, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return out
}

func (e event) has(k string) bool { _, ok := e[k]; return ok }

func (e event) str(k string) string { s, _ := e[k].(string); return s }

// msg is the event's sentence. VictoriaLogs parses the JSON line into
// fields at ingestion, so the sentence is the line's "message" field; a
// Loki keeps the line as it is.
func (e event) msg() string {
	if m := e.str("message"); m != "" {
		return m
	}
	return e.str("_msg")
}

func (e event) num(t *testing.T, k string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(e.str(k), 64)
	if err != nil {
		t.Errorf("%s: %s = %q is not a number", e.str("kind"), k, e.str(k))
	}
	return v
}

func (e event) time() time.Time {
	ts, _ := time.Parse(time.RFC3339Nano, e.str("_time"))
	return ts
}

func (e event) cell() cell {
	return cell{e.str("src_city"), e.str("dst_city"), e.str("carrier"), e.str("network_type")}
}

var streamLabel = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// labels parses the entry's _stream, e.g. {kind="path_stale",service="bantay"}.
func (e event) labels() map[string]string {
	out := map[string]string{}
	for _, m := range streamLabel.FindAllStringSubmatch(e.str("_stream"), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// checkRunning fails the test if the demo has stopped on its own.
func checkRunning(t *testing.T, d *demo.Running, what string) {
	t.Helper()
	select {
	case <-d.Exited():
		t.Fatalf("%s: the demo stopped: %v", what, d.Err())
	default:
	}
}

// watcher polls VictoriaLogs for the events a stage should produce.
type watcher struct {
	t    *testing.T
	vl   *victorialogs.Server
	demo *demo.Running
}

// waitFor polls query (LogsQL) until ok accepts its events, at most
// stageLimit, failing early if the demo stopped.
func (w *watcher) waitFor(what, query string, ok func([]event) bool) {
	w.t.Helper()
	deadline := time.Now().Add(stageLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rows, err := w.vl.Query(ctx, query+` | sort by (_time)`)
		cancel()
		evs := toEvents(rows)
		if err == nil && ok(evs) {
			return
		}
		checkRunning(w.t, w.demo, "waiting for "+what)
		if time.Now().After(deadline) {
			w.t.Fatalf("waiting for %s: not in VictoriaLogs after %s (query %s, err %v); got %v", what, stageLimit, query, err, evs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitAllPaths waits until every demo path is a heatmap cell with a few
// samples, so that each has learnt its probe interval. It asks the
// heatmap's snapshot rather than the Prometheus API: a PromQL query while
// the store is still creating series trips a known data race inside
// Prometheus's TSDB under -race (prometheus/prometheus#15317).
func waitAllPaths(t *testing.T, ctx context.Context, base string, d *demo.Running) {
	t.Helper()
	want := len(netsim.DemoUplinks()) * len(netsim.DemoCities())
	waitHeatmap(t, ctx, base, d, fmt.Sprintf("%d heatmap cells with data", want), func(cells map[cell]snapshotCell) bool {
		ready := 0
		for _, c := range cells {
			if c.Count >= 4 {
				ready++
			}
		}
		return ready == want
	})
}

// snapshotCell is the part of a heatmap snapshot cell the test reads.
type snapshotCell struct {
	SrcCity     string `json:"src_city"`
	DstCity     string `json:"dst_city"`
	Carrier     string `json:"carrier"`
	NetworkType string `json:"network_type"`
	Count       int    `json:"count"`
	State       string `json:"state"`
}

// waitHeatmap polls the heatmap's snapshot until ok accepts its cells, at
// most 60 s.
func waitHeatmap(t *testing.T, ctx context.Context, base string, d *demo.Running, what string, ok func(map[cell]snapshotCell) bool) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cells, err := heatmapCells(ctx, client, base)
		if err == nil && ok(cells) {
			return
		}
		checkRunning(t, d, "waiting for "+what)
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not there after 60s; cells %v (err %v)", what, cells, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// heatmapCells reads the heatmap's snapshot.
func heatmapCells(ctx context.Context, client *http.Client, base string) (map[cell]snapshotCell, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/heatmap/snapshot", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("heatmap snapshot: HTTP %d", resp.StatusCode)
	}
	var snap struct {
		Cells []snapshotCell `json:"cells"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("heatmap snapshot: %w", err)
	}
	out := make(map[cell]snapshotCell, len(snap.Cells))
	for _, c := range snap.Cells {
		out[cell{c.SrcCity, c.DstCity, c.Carrier, c.NetworkType}] = c
	}
	return out, nil
}

// reloadRules asks the collector to reload its rule files, as an operator
// does after editing them.
func reloadRules(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatalf("reload rules: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload rules: HTTP %d: %s", resp.StatusCode, body)
	}
}

// demoOptions puts every listener of the demo on a free loopback port and
// makes the probes measure every second.
func demoOptions(t *testing.T) demo.Options {
	t.Helper()
	opts, err := demo.FreeLoopbackPorts()
	if err != nil {
		t.Fatal(err)
	}
	opts.DataDir = t.TempDir()
	opts.ProbeInterval = time.Second
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return opts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
