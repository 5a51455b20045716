package compattest

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/demo"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// probeInterval is the demo's probe and export interval in these tests:
// short, so that a minute of demo holds enough samples for rates and
// quantiles, and so that the test alert's 15 s window is 15 probe rounds.
const probeInterval = time.Second

// env is one demo run wired to a real Prometheus (receiving Bantay's
// remote write) and a real Alertmanager (receiving its alerts).
type env struct {
	bantayURL string
	bantay    *promtest.Client
	prom      *promtest.Prometheus
	am        *promtest.Alertmanager
	// ruleFile is the extra rule file the demo loads (a copy of
	// testdata/fast-path-latency-alert.yml), rewritten by the reload test.
	ruleFile string
	// tables are the demo's impairment tables, per destination city.
	tables  map[string]*netsim.Table
	started time.Time
}

// comparatorConfig is the real Prometheus's configuration: no scrapes and
// no rules (everything it holds comes from Bantay's remote write), and the
// same out-of-order window as Bantay's store (30 m by default), without
// which Prometheus 2.42 rejects a whole remote-write request for one late
// sample that Bantay accepted.
const comparatorConfig = `global:
  scrape_interval: 15s
  evaluation_interval: 15s
storage:
  tsdb:
    out_of_order_time_window: 30m
`

// lossyUplink is the uplink whose path to lossyCity the test makes lossy
// from the start, so that failure counters (and the panels and queries
// built on them) have data within seconds; the demo's own lossy paths lose
// only 0.5–3 % and may not fail once in a short run.
var lossyUplink, lossyCity = "bag-01/smart-4g", "Davao"

// startEnv starts Prometheus, Alertmanager and the demo, and waits until
// every path of the demo has data.
func startEnv(t *testing.T, ctx context.Context) *env {
	t.Helper()
	e := &env{}
	promCfg := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(comparatorConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	e.prom = promtest.StartPrometheus(t, "--config.file="+promCfg)
	e.am = promtest.StartAlertmanager(t)

	e.ruleFile = filepath.Join(t.TempDir(), "fast-path-latency-alert.yml")
	if err := os.WriteFile(e.ruleFile, readFile(t, "testdata/fast-path-latency-alert.yml"), 0o600); err != nil {
		t.Fatal(err)
	}

	opts := demoOptions(t)
	opts.RemoteWriteURL = e.prom.RemoteWriteURL()
	opts.AlertmanagerURL = e.am.URL
	opts.RuleFiles = []string{e.ruleFile}
	lossy := demoUplink(t, lossyUplink)
	lossyProfile, err := netsim.DemoProfile(lossy, lossyCity)
	if err != nil {
		t.Fatal(err)
	}
	lossyProfile.Loss = 0.2
	// Called by demo.Run before the proxies start; the ready callback below
	// happens after it, so the test goroutine reads e.tables safely.
	opts.Network = func(tables map[string]*netsim.Table) {
		e.tables = tables
		if err := tables[lossyCity].Set(lossy.Addr, lossyProfile); err != nil {
			t.Errorf("make %s → %s lossy: %v", lossyUplink, lossyCity, err)
		}
	}
	var probes *demo.Probes
	opts.Probes = func(p *demo.Probes) { probes = p }
	e.bantayURL = "http://" + opts.HTTPAddr
	e.bantay = promtest.NewClient(e.bantayURL)

	e.started = time.Now()
	d, err := demo.Start(opts, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(time.Minute); err != nil {
			t.Errorf("demo did not stop cleanly: %v", err)
		}
	})

	e.sendUnregisteredProbe(t, opts.OTLPHTTPAddr, probes)

	// Every (uplink, destination, method) has a latency histogram (its total:
	// http targets also have one per phase), and the
	// shipped recording rules have run (the alerts read their thresholds).
	paths := len(netsim.DemoUplinks()) * len(netsim.DemoCities()) * 2
	waitFor(t, ctx, 60*time.Second, "every demo path in Bantay and the route thresholds recorded", func() (bool, string) {
		res, err := e.bantay.Query(ctx, `count(network_latency_milliseconds_count{phase=""})`, time.Time{})
		if err != nil {
			return false, err.Error()
		}
		v, err := res.Vector()
		if err != nil || len(v) != 1 || int(v[0].Value) != paths {
			return false, "paths: " + Summary(res)
		}
		res, err = e.bantay.Query(ctx, `count(path:latency_threshold_milliseconds)`, time.Time{})
		if err != nil {
			return false, err.Error()
		}
		return res.Len() == 1, "thresholds: " + Summary(res)
	})
	return e
}

// demoOptions puts every listener of the demo on a free loopback port.
func demoOptions(t *testing.T) demo.Options {
	t.Helper()
	opts, err := demo.FreeLoopbackPorts()
	if err != nil {
		t.Fatal(err)
	}
	opts.DataDir = t.TempDir()
	opts.ProbeInterval = probeInterval
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return opts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// demoUplink returns the demo uplink named "probe/uplink".
func demoUplink(t *testing.T, name string) netsim.DemoUplink {
	t.Helper()
	for _, u := range netsim.DemoUplinks() {
		if u.Probe+"/"+u.Name == name {
			return u
		}
	}
	t.Fatalf("no demo uplink %s", name)
	return netsim.DemoUplink{}
}

// waitFor polls cond every 500 ms until it holds, failing the test with
// cond's last explanation after timeout (or when ctx ends).
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s: gave up after %v: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// unregisteredProbe is the probe id of the OTLP data sendUnregisteredProbe
// sends: no registry entry, so citytag rejects it as unknown_probe.
const unregisteredProbe = "rogue-01"

// sendUnregisteredProbe posts one attempts point from a probe that is not in
// the collector's registry over OTLP/HTTP every 2 s while the test runs, as
// a misconfigured probe would. citytag must reject and count it
// (bantay_citytag_rejected_points{reason="unknown_probe"} on the
// collector's telemetry), so the collector-health panel and the
// BantayCollectorRejectingPoints rule read real rejections, not a name that
// might match nothing. Each request must be answered HTTP 400 naming the
// rejection: the sender learns its data was not stored, and that sending
// it again will not help.
func (e *env) sendUnregisteredProbe(t *testing.T, otlpHTTPAddr string, probes *demo.Probes) {
	t.Helper()
	// With a registered probe's credential (the collector authenticates
	// every request), so that citytag's registry is what refuses the id.
	client, err := probes.Client("mnl-01", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	start := time.Now()
	dp := otlpload.AppendAttempts(md, map[string]string{"service.name": "bantay-probe", "service.instance.id": unregisteredProbe}, start)
	dp.Attributes().PutStr("server.address", "davao.bantay.ph")

	send := func(n int64) (otlpload.Answer, error) {
		dp.SetIntValue(n)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		return otlpload.PostHTTP(context.Background(), client, "http://"+otlpHTTPAddr, md)
	}
	// The first request must be answered, and refused in citytag's words,
	// or nothing below means anything.
	a, err := send(1)
	if err != nil {
		t.Fatalf("OTLP/HTTP from unregistered probe %s: %v", unregisteredProbe, err)
	}
	want := "citytag rejected 1 of 1 points; first: unknown_probe (probe " + unregisteredProbe + "): probe is not in the citytag registry"
	if a.Status != http.StatusBadRequest || !strings.Contains(a.Message, want) {
		t.Fatalf("OTLP/HTTP from unregistered probe %s: HTTP %d %q, want 400 with %q", unregisteredProbe, a.Status, a.Message, want)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for n := int64(2); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				// The answer is the refusal checked above; errors are the
				// demo shutting down or restarting. The assertions on the
				// counter notice if nothing arrives.
				_, _ = send(n)
			}
		}
	}()
	// Registered after startEnv's demo cleanup, so it runs first: the
	// sender stops before the demo does.
	t.Cleanup(func() { close(stop); <-done })
}
