package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/probes/reflector"
)

// TestDemoMeshFollowsTheRegistry runs the demo, whose probes have no
// target in another city but take them from the collector's mesh
// registry: the city matrix forms from the mesh alone, through the
// simulated network. A site added to the registry (a reflector in Cebu)
// and reloaded the way an operator reloads it (SIGHUP) is measured by
// every probe on every uplink; removed and reloaded, it is no longer
// measured and its series stop receiving samples.
func TestDemoMeshFollowsTheRegistry(t *testing.T) {
	testenv.LongTest(t, "end-to-end demo run")
	opts := testOptions(t)
	opts.MeshRefresh = 2 * time.Second
	d := startDemo(t, opts)
	ctx := context.Background()
	client := promtest.NewClient("http://" + opts.HTTPAddr)

	var want []string
	for _, src := range netsim.DemoCities() {
		for _, dst := range netsim.DemoCities() {
			if src != dst {
				want = append(want, src+"→"+dst)
			}
		}
	}
	slices.Sort(want)
	pairs := func(expr string) []string {
		res, err := client.Query(ctx, expr, time.Time{})
		if err != nil {
			return []string{err.Error()}
		}
		vec, err := res.Vector()
		if err != nil {
			return []string{err.Error()}
		}
		var out []string
		for _, s := range vec {
			out = append(out, fmt.Sprintf("%s→%s", s.Metric["src_city"], s.Metric["dst_city"]))
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, d, "every ordered pair of cities answered over mesh targets", 90*time.Second, func() bool {
		return slices.Equal(pairs(`count by (src_city, dst_city) (network_latency_milliseconds_count{method="udp", target=~"mesh-.*"} > 0)`), want)
	})
	for _, p := range pairs(`count by (src_city, dst_city) (bantay_probe_attempts_total{method="udp", target!~"mesh-.*"})`) {
		if src, dst, _ := strings.Cut(p, "→"); src != dst {
			t.Errorf("inter-city udp target not from the mesh: %s", p)
		}
	}

	cebu, err := reflector.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = cebu.Serve(context.Background()) }()
	defer cebu.Close()
	registry := filepath.Join(opts.DataDir, "probes.yaml")
	original, err := os.ReadFile(registry)
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	if err := yaml.Unmarshal(original, &reg); err != nil {
		t.Fatal(err)
	}
	reg["ceb-01"] = map[string]any{"city": "Cebu", "reflector": cebu.Addr().String(),
		"uplinks": []any{map[string]any{"carrier": "Globe", "network_type": "4g"}}}
	added, err := yaml.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	const recent = `count(count_over_time(bantay_probe_attempts_total{target="mesh-ceb-01-udp"}[4s]))`
	uplinks := len(netsim.DemoUplinks())
	fresh := func() int {
		res, err := client.Query(ctx, recent, time.Time{})
		if err != nil {
			return -1
		}
		vec, err := res.Vector()
		if err != nil || len(vec) == 0 {
			return 0
		}
		return int(vec[0].Value)
	}
	reload(t, registry, added)
	waitFor(t, d, "every probe uplink measuring the added site", 90*time.Second, func() bool { return fresh() == uplinks })
	waitFor(t, d, "the added site answering", 30*time.Second, func() bool {
		return len(pairs(`count by (src_city, dst_city) (network_latency_milliseconds_count{target="mesh-ceb-01-udp"} > 0)`)) == len(netsim.DemoCities())
	})

	reload(t, registry, original)
	waitFor(t, d, "no probe measuring the removed site", 90*time.Second, func() bool { return fresh() == 0 })
	// No ghost cells: nothing feeds the removed site's cells, so the
	// heatmap shows them stale (until they expire).
	waitSnapshot(t, d, "http://"+opts.HTTPAddr, "the removed site's heatmap cells stale", func(s snapshot) bool {
		n := 0
		for _, c := range s.Cells {
			if c.DstCity == "Cebu" {
				if c.State != "stale" {
					return false
				}
				n++
			}
		}
		return n == uplinks
	})
	// Samples of the last few seconds: an instant query still finds the
	// removed site's last samples for the lookback (5m), as Prometheus
	// does for any OTLP series that stops, but no new ones arrive.
	if got := pairs(`count by (src_city, dst_city) (count_over_time(network_latency_milliseconds_count{method="udp", target=~"mesh-.*"}[4s]))`); !slices.Equal(got, want) {
		t.Errorf("after the removal the matrix is %v, want %v", got, want)
	}
	if err := d.Stop(time.Minute); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
}

// reload writes the registry and sends this process SIGHUP, as an operator
// reloads a collector; the demo's collector runs in it.
func reload(t *testing.T, registry string, data []byte) {
	t.Helper()
	if err := os.WriteFile(registry, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}
