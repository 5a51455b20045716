package agent

import (
	"context"
	"math"
	"net/http"
	"runtime/debug"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
)

// keepMemoryLimit restores the process's soft memory limit after a test
// that lets an agent set it.
func keepMemoryLimit(t *testing.T) {
	t.Helper()
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
}

// TestMemoryLimitAtOneThousandTargets: at probefootprint's 1,000 udp
// targets the limit is the one measured to keep the probe under 64 MiB
// resident (docs/BENCHMARKS.md): about 2.5 times the live heap of 15–18 MB,
// and no more than the 48 MiB the operator-set GOMEMLIMIT was measured with.
func TestMemoryLimitAtOneThousandTargets(t *testing.T) {
	a, err := New(footprintConfig(t, "127.0.0.1:1", 1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.discard)
	if a.MemoryLimit() != 0 {
		t.Fatalf("a limit of %d before LimitMemory", a.MemoryLimit())
	}
	a.LimitMemory()
	if got := float64(a.MemoryLimit()) / (1 << 20); got < 40 || got > 48 {
		t.Errorf("limit at 1,000 udp targets %.1f MiB, want 40–48", got)
	}
}

// TestMemoryLimitFollowsTheSchedules: Run sets the process's limit to the
// agent's; an uplink more, an http target (a histogram per phase) and both
// histogram forms each need more; a mesh target that joins raises it on
// every uplink, and one that leaves does not lower it (the SDK keeps its
// series). Without LimitMemory, Run leaves the process's limit alone.
func TestMemoryLimitFollowsTheSchedules(t *testing.T) {
	keepMemoryLimit(t)
	limit := func(cfg *config.Config) int64 {
		t.Helper()
		a, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.discard()
		a.LimitMemory()
		return a.MemoryLimit()
	}
	oneUplink := func(cfg *config.Config) *config.Config {
		cfg.Uplinks = cfg.Uplinks[:1]
		return cfg
	}
	collector := "127.0.0.1:1"
	base := limit(oneUplink(testConfig(t, collector, "127.0.0.1:7", "127.0.0.1:9")))
	if two := limit(testConfig(t, collector, "127.0.0.1:7", "127.0.0.1:9")); two <= base {
		t.Errorf("two uplinks %d, one %d: want more for more schedules", two, base)
	}
	withHTTP := oneUplink(testConfig(t, collector, "127.0.0.1:7", "127.0.0.1:9"))
	withHTTP.Targets[1].Method, withHTTP.Targets[1].Address = config.MethodHTTP, "http://127.0.0.1:9/"
	if h := limit(withHTTP); h <= base {
		t.Errorf("with an http target %d, with tcp %d: want more for its phase histograms", h, base)
	}
	both := oneUplink(testConfig(t, collector, "127.0.0.1:7", "127.0.0.1:9"))
	both.Recording.Histograms = config.HistogramsBoth
	if b := limit(both); b <= base {
		t.Errorf("both histogram forms %d, classic %d: want more", b, base)
	}

	// Mesh: Run sets the limit, a joining site raises it, a leaving one
	// does not lower it.
	_, reg, cfg, own := meshSetup(t)
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.LimitMemory()
	start := a.MemoryLimit()
	share := 2 * memoryShare(config.Target{Method: config.MethodUDP}, cfg.Recording) // a udp site on 2 uplinks
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the registered site started", 10*time.Second, func() bool { return a.MemoryLimit() > start })
	if got := a.MemoryLimit(); got != start+share {
		t.Errorf("a site joining on 2 uplinks raised the limit from %d to %d, want %d", start, got, start+share)
	}
	if got := debug.SetMemoryLimit(-1); got != a.MemoryLimit() {
		t.Errorf("process limit %d, agent's %d", got, a.MemoryLimit())
	}
	reg.set(http.StatusOK, site("bag-01", "Baguio", own))
	waitFor(t, "the site replaced", 10*time.Second, func() bool { return a.MemoryLimit() > start+share })
	if got := a.MemoryLimit(); got != start+2*share {
		t.Errorf("after one site left and another joined the limit is %d, want %d", got, start+2*share)
	}
}

// TestNoMemoryLimitUnlessAsked: an agent that was not asked (the demo's,
// several in one process) leaves the process's limit as it found it.
func TestNoMemoryLimitUnlessAsked(t *testing.T) {
	keepMemoryLimit(t)
	debug.SetMemoryLimit(math.MaxInt64)
	collector := "127.0.0.1:1"
	a, err := New(oneTarget(testConfig(t, collector, "127.0.0.1:7", "127.0.0.1:9")), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Run(ctx)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("process limit %d after an agent not asked to limit it", got)
	}
}

func oneTarget(cfg *config.Config) *config.Config {
	cfg.Targets = cfg.Targets[:1]
	return cfg
}
