package agent

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/prober"
)

func TestJitterStaysWithinTenPercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const interval = 15 * time.Second
	lo, hi := interval, time.Duration(0)
	for range 10000 {
		d := jittered(interval, rng)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 13500*time.Millisecond || hi > 16500*time.Millisecond {
		t.Fatalf("jitter range [%v, %v] leaves ±10%%", lo, hi)
	}
	// And it actually spreads: lock-step is what jitter is for.
	if lo > 13700*time.Millisecond || hi < 16300*time.Millisecond {
		t.Fatalf("jitter range [%v, %v] is suspiciously narrow", lo, hi)
	}
}

// stuckProber never answers before its deadline, like a black-holed target.
type stuckProber struct {
	running, maxRunning, calls atomic.Int32
}

func (*stuckProber) Method() string { return "udp" }
func (p *stuckProber) Probe(ctx context.Context) (prober.Result, error) {
	n := p.running.Add(1)
	defer p.running.Add(-1)
	p.calls.Add(1)
	for {
		m := p.maxRunning.Load()
		if n <= m || p.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	<-ctx.Done()
	return prober.Result{}, ctx.Err()
}

// TestTimeoutsNeverPileUp runs a schedule against a target that always
// times out: runs must never overlap, and each counts as a timeout failure.
func TestTimeoutsNeverPileUp(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	inst, err := newInstruments(provider.Meter(metricmodel.ScopeName))
	if err != nil {
		t.Fatal(err)
	}
	p := &stuckProber{}
	target := config.Target{Name: "hole", DstCity: "Davao", Method: "udp", Interval: 20 * time.Millisecond, Timeout: 15 * time.Millisecond}
	logs := &logRecorder{}
	j := newJob(target, p, inst, slog.New(logs))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { j.run(ctx, rand.New(rand.NewPCG(3, 4))) })
	waitFor(t, "five runs", 10*time.Second, func() bool { return p.calls.Load() >= 5 })
	cancel()
	wg.Wait()

	if m := p.maxRunning.Load(); m != 1 {
		t.Fatalf("%d runs of one schedule overlapped", m)
	}
	if n := logs.count("probe failing"); n != 1 {
		t.Errorf("a target failing every run logged %d warnings, want 1", n)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var timeouts int64
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != metricmodel.Failures {
			continue
		}
		for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
			if r, _ := dp.Attributes.Value("reason"); r.AsString() == "timeout" {
				timeouts += dp.Value
			}
		}
	}
	// The run interrupted by cancel is not counted, so at least calls-1.
	if calls := int64(p.calls.Load()); timeouts < calls-1 || timeouts > calls {
		t.Fatalf("%d timeout failures recorded for %d runs", timeouts, calls)
	}
}
