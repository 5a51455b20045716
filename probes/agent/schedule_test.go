package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
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
	inst, err := newInstruments(provider.Meter(metricmodel.ScopeName), "Manila")
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

// collected is what a ManualReader holds, by metric name and then by the
// point's attributes ("target/reason" or "target/phase"; "target" alone
// without either).
type collected map[string]map[string]float64

func collect(t *testing.T, reader *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := collected{}
	key := func(s attribute.Set) string {
		k, _ := s.Value("target")
		for _, extra := range []attribute.Key{"reason", "phase"} {
			if v, ok := s.Value(extra); ok {
				return k.AsString() + "/" + v.AsString()
			}
		}
		return k.AsString()
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			pts := map[string]float64{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				addPoints(pts, d.DataPoints, key)
			case metricdata.Sum[float64]:
				addPoints(pts, d.DataPoints, key)
			case metricdata.Gauge[int64]:
				addPoints(pts, d.DataPoints, key)
			case metricdata.Gauge[float64]:
				addPoints(pts, d.DataPoints, key)
			case metricdata.Histogram[float64]:
				// The count: what every test here needs of a histogram.
				for _, dp := range d.DataPoints {
					pts[key(dp.Attributes)] = float64(dp.Count)
				}
			}
			out[m.Name] = pts
		}
	}
	return out
}

func addPoints[N int64 | float64](pts map[string]float64, dps []metricdata.DataPoint[N], key func(attribute.Set) string) {
	for _, dp := range dps {
		pts[key(dp.Attributes)] = float64(dp.Value)
	}
}

func recordingJob(t *testing.T, target config.Target) (*job, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	inst, err := newInstruments(provider.Meter(metricmodel.ScopeName), "Manila")
	if err != nil {
		t.Fatal(err)
	}
	return newJob(target, &stuckProber{}, inst, slog.New(slog.DiscardHandler)), reader
}

// TestRecordRound: a round's loss, duplicates, reordering and jitter reach
// their counters, and every counter of a target exists at 0 before its
// first round, so that rate() sees the first increase.
func TestRecordRound(t *testing.T) {
	j, reader := recordingJob(t, config.Target{Name: "dvo", DstCity: "Davao", Method: "udp", Count: 5})
	before := collect(t, reader)
	for _, name := range []string{metricmodel.Attempts, metricmodel.Duplicates, metricmodel.Reordered, metricmodel.Jitter, metricmodel.JitterPairs} {
		if v, ok := before[name]["dvo"]; !ok || v != 0 {
			t.Errorf("%s before the first round: %v (present %v), want 0", name, v, ok)
		}
	}
	if v, ok := before[metricmodel.RoundsInFlight][""]; !ok || v != 0 {
		t.Errorf("rounds in flight before any round: %v (present %v), want 0", v, ok)
	}

	msRTT := func(f float64) prober.Result { return prober.Result{RTT: time.Duration(f * float64(time.Millisecond))} }
	j.record(&prober.Round{
		Sent:       5,
		Results:    []prober.Result{msRTT(10), msRTT(12), msRTT(11), msRTT(15)},
		Duplicates: 2, Reordered: 1,
		Failures: map[prober.Reason]int{prober.ReasonTimeout: 1},
	})
	// A round with one answer has no pair to take a jitter from.
	j.record(&prober.Round{Sent: 5, Results: []prober.Result{msRTT(20)}, Failures: map[prober.Reason]int{prober.ReasonTimeout: 4}})
	got := collect(t, reader)
	want := map[string]map[string]float64{
		metricmodel.Attempts:    {"dvo": 10},
		metricmodel.Duplicates:  {"dvo": 2},
		metricmodel.Reordered:   {"dvo": 1},
		metricmodel.Jitter:      {"dvo": 7}, // |12−10| + |11−12| + |15−11|
		metricmodel.JitterPairs: {"dvo": 3},
		metricmodel.Latency:     {"dvo": 5},
	}
	for name, pts := range want {
		for k, v := range pts {
			if g := got[name][k]; math.Abs(g-v) > 1e-9 {
				t.Errorf("%s{%s} = %v, want %v", name, k, g, v)
			}
		}
	}
	if g := got[metricmodel.Failures]["dvo/timeout"]; g != 5 {
		t.Errorf("timeouts %v, want 5", g)
	}
	// Not an http target: no status, no certificate, no phases.
	if len(got[metricmodel.HTTPStatus])+len(got[metricmodel.CertExpiry]) != 0 || len(got[metricmodel.Latency]) != 1 {
		t.Errorf("udp target has http series: status %v expiry %v latency %v", got[metricmodel.HTTPStatus], got[metricmodel.CertExpiry], got[metricmodel.Latency])
	}
}

// TestRecordHTTPRound: an http answer's phases are latency points with a
// phase attribute beside the total (which has none), its status and
// certificate expiry are gauges, and a round answered only with an
// unexpected status sets the status gauge to that status.
func TestRecordHTTPRound(t *testing.T) {
	j, reader := recordingJob(t, config.Target{Name: "web", DstCity: "Manila", Method: "http", Address: "https://127.0.0.1:8443/", Count: 1})
	expiry := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	j.record(&prober.Round{Sent: 1, Results: []prober.Result{{
		RTT: 9 * time.Millisecond,
		Phases: []prober.Phase{
			{Name: prober.PhaseConnect, Duration: time.Millisecond}, {Name: prober.PhaseTLS, Duration: 3 * time.Millisecond},
			{Name: prober.PhaseProcessing, Duration: 4 * time.Millisecond}, {Name: prober.PhaseTransfer, Duration: time.Millisecond},
		},
		StatusCode: 200, CertNotAfter: expiry,
	}}})
	got := collect(t, reader)
	for _, k := range []string{"web", "web/connect", "web/tls", "web/processing", "web/transfer"} {
		if got[metricmodel.Latency][k] != 1 {
			t.Errorf("latency{%s} count %v, want 1", k, got[metricmodel.Latency][k])
		}
	}
	if _, ok := got[metricmodel.Latency]["web/dns"]; ok {
		t.Error("a phase that did not happen (dns, for an IP address) was recorded")
	}
	if got[metricmodel.HTTPStatus]["web"] != 200 || got[metricmodel.CertExpiry]["web"] != float64(expiry.Unix()) {
		t.Errorf("status %v expiry %v, want 200 and %d", got[metricmodel.HTTPStatus]["web"], got[metricmodel.CertExpiry]["web"], expiry.Unix())
	}

	j.record(&prober.Round{Sent: 1, Failures: map[prober.Reason]int{prober.ReasonHTTPStatus: 1},
		Errors: map[prober.Reason]error{prober.ReasonHTTPStatus: fmt.Errorf("GET: %w", &prober.StatusError{Got: 503})}})
	got = collect(t, reader)
	if got[metricmodel.HTTPStatus]["web"] != 503 {
		t.Errorf("status after a 503 = %v, want 503", got[metricmodel.HTTPStatus]["web"])
	}
	// Nothing new is known about the certificate: it keeps its value.
	if got[metricmodel.CertExpiry]["web"] != float64(expiry.Unix()) {
		t.Errorf("expiry after a failed round = %v", got[metricmodel.CertExpiry]["web"])
	}
}
