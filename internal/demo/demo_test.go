package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// testOptions puts every listener of the demo on a free loopback port.
func testOptions(t *testing.T) Options {
	t.Helper()
	opts, err := FreeLoopbackPorts()
	if err != nil {
		t.Fatal(err)
	}
	opts.DataDir = t.TempDir()
	opts.ProbeInterval = time.Second
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return opts
}

// startDemo starts the demo and returns once it serves.
func startDemo(t *testing.T, opts Options) *Running {
	t.Helper()
	d, err := Start(opts, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(time.Minute) }) // when the test ends early
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestDemoEndToEnd runs the README's first command in-process: the real
// collector, three real probes and the impaired targets. Through the
// Prometheus API it checks that every configured (src_city, dst_city,
// carrier, network_type) has a correctly placed latency histogram and that
// the measured median RTT of the UDP echo matches the injected delay.
func TestDemoEndToEnd(t *testing.T) {
	testenv.LongTest(t, "end-to-end demo run")
	opts := testOptions(t)
	ctx := context.Background()
	d := startDemo(t, opts)

	client := promtest.NewClient("http://" + opts.HTTPAddr)
	gaz := gazetteer.Default()
	uplinks := netsim.DemoUplinks()
	cities := netsim.DemoCities()
	// Wait (bounded) for the first export of every path to land.
	expr := `count by (src_city, dst_city, carrier, network_type) (network_latency_milliseconds_count{method="udp"})`
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Query(ctx, expr, time.Now())
		if err == nil && res.Len() == len(uplinks)*len(cities) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d paths, last answer %v (err %v)", len(uplinks)*len(cities), res, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Let enough samples accumulate for a stable median (bounded wait).
	time.Sleep(12 * time.Second)

	series, err := client.Series(ctx, []string{`network_latency_milliseconds_count{method="udp"}`}, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]model.LabelSet{}
	for _, s := range series {
		placed[fmt.Sprint(s["src_city"], s["dst_city"], s["carrier"], s["network_type"])] = s
	}
	for _, u := range uplinks {
		src, _ := gaz.City(u.City)
		for _, dst := range cities {
			d, _ := gaz.City(dst)
			s, ok := placed[fmt.Sprint(u.City, dst, u.Carrier, u.NetworkType)]
			if !ok {
				t.Errorf("no series for %s → %s on %s %s", u.City, dst, u.Carrier, u.NetworkType)
				continue
			}
			for label, want := range map[string]string{
				"region": src.Region, "island_group": src.IslandGroup,
				"dst_region": d.Region, "dst_island_group": d.IslandGroup,
				"probe": u.Probe, "job": "bantay-probe", "instance": u.Probe,
			} {
				if got := string(s[model.LabelName(label)]); got != want {
					t.Errorf("%s → %s %s: %s=%q, want %q", u.City, dst, u.Carrier, label, got, want)
				}
			}
		}
	}

	res, err := client.Query(ctx, `histogram_quantile(0.5, sum by (src_city, dst_city, carrier, network_type, le) (rate(network_latency_milliseconds_bucket{method="udp"}[1m])))`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	medians := map[string]float64{}
	for _, s := range vec {
		medians[fmt.Sprint(s.Metric["src_city"], s.Metric["dst_city"], s.Metric["carrier"])] = float64(s.Value)
	}
	for _, u := range uplinks {
		for _, dst := range cities {
			p, err := netsim.DemoProfile(u, dst)
			if err != nil {
				t.Fatal(err)
			}
			// netsim adds an exponential delay with mean Jitter/2 in each
			// direction, so the round trip's jitter is Gamma(2, Jitter/2),
			// whose median is 0.839 × Jitter.
			want := (float64(p.Base) + 0.839*float64(p.Jitter)) / float64(time.Millisecond)
			got, ok := medians[fmt.Sprint(u.City, dst, u.Carrier)]
			// The tolerance covers bucket interpolation (buckets are 2.5–10 ms
			// wide here) and scheduling delay on a busy 2-core machine; a
			// wrong route (Manila–Baguio vs Manila–Davao) is off by far more.
			tol := math.Max(0.35*want, 8)
			if !ok || math.Abs(got-want) > tol {
				t.Errorf("%s → %s on %s: median %.1f ms, injected %.1f ms (±%.1f)", u.City, dst, u.Carrier, got, want, tol)
			}
		}
	}

	if err := d.Stop(time.Minute); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
}
