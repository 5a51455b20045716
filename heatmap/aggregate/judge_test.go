package aggregate

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// judged is one input to health.judge: the events window's p95, the
// history's p95 (the baseline), samples, loss and attempts, at second `at`.
type judged struct {
	at       int
	p95      float64
	base     float64
	samples  uint64
	loss     float64
	attempts float64
}

// lat is a latency-only input: 20 samples, no loss measured.
func lat(p95, base float64) judged {
	return judged{p95: p95, base: base, samples: 20, loss: math.NaN()}
}

// lossy is a loss-only input: too few latency samples to judge latency.
func lossy(loss, attempts float64) judged {
	return judged{p95: math.NaN(), base: 40, samples: 0, loss: loss, attempts: attempts}
}

// during repeats j once a second for the seconds [from, to), as the
// broadcast tick does.
func during(from, to int, j judged) []judged {
	var out []judged
	for s := from; s < to; s++ {
		j.at = s
		out = append(out, j)
	}
	return out
}

func seq(parts ...[]judged) []judged { return slices.Concat(parts...) }

// runJudge feeds the inputs to a fresh health and renders the events as
// "kind@second(reason)".
func runJudge(t *testing.T, cfg EventsConfig, in []judged) (string, *health) {
	t.Helper()
	var h health
	var got []string
	base := t0.UnixMilli()
	for _, j := range in {
		kind, reason, ok := h.judge(&cfg, base+int64(j.at)*1000, j.p95, j.base, j.samples, j.loss, j.attempts)
		if ok {
			got = append(got, fmt.Sprintf("%s@%d(%s)", kind, j.at, reason))
		}
	}
	return strings.Join(got, " "), &h
}

// TestJudgeHysteresis drives the degraded/recovered state machine with
// hand-computed inputs. With the shipped settings (degraded_ratio 1.5,
// degraded_min_delta_ms 10, recovered_ratio 1.2, recovered_min_delta_ms
// 5 = half of 10, degraded_loss 5 %, recovered_loss 2 %, hold 30 s,
// min_samples 5):
//
//   - baseline 40 ms: degraded above max(1.5×40, 40+10) = 60 ms; recovered
//     at or below max(1.2×40, 40+5) = 48 ms; 48 < p95 ≤ 60 changes nothing;
//   - baseline 3 ms: degraded at 3+10 = 13 ms or more (the delta decides,
//     1.5×3 = 4.5); recovered at or below 3+5 = 8 ms (1.2×3 = 3.6);
//   - baseline 100 ms: degraded above 150 ms, recovered at or below 120 ms.
func TestJudgeHysteresis(t *testing.T) {
	cfg := Config{}.WithDefaults().Events
	if cfg.RecoveredMinDelta != 5 || cfg.Hold != 30*time.Second || cfg.MinSamples != 5 {
		t.Fatalf("shipped events settings changed (%+v); recompute the cases", cfg)
	}
	// hover alternates p95 between lo and hi every 40 s (longer than the
	// hold, so each side would be confirmed if it were a threshold) for
	// 400 s, starting at second from.
	hover := func(from int, lo, hi, base float64) []judged {
		var out []judged
		for i := range 10 {
			p := hi
			if i%2 == 1 {
				p = lo
			}
			out = append(out, during(from+40*i, from+40*(i+1), lat(p, base))...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []judged
		want string
	}{
		{"a spike shorter than hold is no incident",
			seq(during(0, 30, lat(100, 40)), during(30, 300, lat(40, 40))), ""},
		{"a condition lasting exactly hold degrades",
			during(0, 60, lat(100, 40)), "degraded@30(latency)"},
		{"one good tick restarts the hold",
			seq(during(0, 20, lat(100, 40)), during(20, 21, lat(40, 40)), during(21, 60, lat(100, 40))),
			"degraded@51(latency)"},
		{"p95 at the enter threshold is not above it",
			during(0, 300, lat(60, 40)), ""},
		{"p95 between the thresholds does not degrade a healthy path",
			during(0, 600, lat(55, 40)), ""},
		{"p95 between the thresholds does not recover a degraded one; at the leave threshold it does",
			seq(during(0, 31, lat(100, 40)), during(31, 600, lat(55, 40)), during(600, 700, lat(48, 40))),
			"degraded@30(latency) recovered@630(back near baseline)"},
		{"small baseline: a p95 just under the enter threshold is not a recovery",
			seq(during(0, 31, lat(20, 3)), during(31, 600, lat(12, 3)), during(600, 700, lat(8, 3))),
			"degraded@30(latency) recovered@630(back near baseline)"},
		{"small baseline: hovering around the enter threshold does not flap",
			hover(0, 12.5, 13.5, 3), "degraded@30(latency)"},
		{"large baseline: hovering around the enter threshold does not flap",
			hover(0, 145, 155, 100), "degraded@30(latency)"},
		{"a delta under degraded_min_delta_ms is no incident however large the ratio",
			during(0, 300, lat(9.9, 0.5)), ""},
		{"too few samples: no latency judgement",
			during(0, 300, judged{p95: 1000, base: 10, samples: 4, loss: math.NaN()}), ""},
		{"no baseline: no latency judgement",
			during(0, 300, lat(1000, math.NaN())), ""},
		{"loss at degraded_loss with 5 attempts degrades",
			during(0, 60, lossy(0.2, 5)), "degraded@30(loss)"},
		{"loss exactly at degraded_loss degrades",
			during(0, 60, lossy(0.05, 20)), "degraded@30(loss)"},
		{"loss just under degraded_loss does not",
			during(0, 300, lossy(0.049, 100)), ""},
		{"total loss with 4 attempts is too little to judge",
			during(0, 300, lossy(1, 4)), ""},
		{"loss between the thresholds does not recover; at recovered_loss it does",
			seq(during(0, 31, lossy(0.2, 20)), during(31, 300, lossy(0.03, 100)), during(300, 400, lossy(0.02, 100))),
			"degraded@30(loss) recovered@330(back near baseline)"},
		{"latency and loss together",
			during(0, 60, judged{p95: 100, base: 40, samples: 20, loss: 0.1, attempts: 22}), "degraded@30(latency+loss)"},
		{"a degraded path without evidence (no samples, no attempts) does not recover",
			seq(during(0, 31, lat(100, 40)), during(31, 900, judged{p95: math.NaN(), base: 40, loss: math.NaN()})),
			"degraded@30(latency)"},
		{"recovery needs latency and loss back: good loss with high p95 is not enough",
			seq(during(0, 31, judged{p95: 100, base: 40, samples: 20, loss: 0.1, attempts: 22}),
				during(31, 300, judged{p95: 100, base: 40, samples: 20, loss: 0, attempts: 20})),
			"degraded@30(latency+loss)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := runJudge(t, cfg, tc.in); got != tc.want {
				t.Errorf("events %q, want %q", got, tc.want)
			}
		})
	}
}

// TestJudgeFreezesTheBaseline: the baseline is the last hour's p95, which a
// long incident drags up until it equals the incident's own p95. Judged
// against that moving baseline the path would "recover" while still slow;
// judged against the baseline frozen at degradation it does not.
func TestJudgeFreezesTheBaseline(t *testing.T) {
	cfg := Config{}.WithDefaults().Events
	// Degraded at 30 ms against 10 ms (30 > 15 and 20 ≥ 10 ms above), then
	// the hour's p95 climbs to 30 ms while the path stays at 30 ms: against
	// the moving baseline 30 ≤ 1.2×30, a recovery; against the frozen 10 ms,
	// 30 > max(12, 15), none. Back at 15 ms (≤ 10+5) it recovers.
	var drag []judged
	for s := 31; s < 3600; s++ {
		j := lat(30, min(30, 10+float64(s)/100))
		j.at = s
		drag = append(drag, j)
	}
	in := seq(during(0, 31, lat(30, 10)), drag, during(3600, 3700, lat(15, 30)))
	got, h := runJudge(t, cfg, in)
	if want := "degraded@30(latency) recovered@3630(back near baseline)"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if h.p95Before != 10 {
		t.Errorf("frozen baseline %g, want 10 (the baseline when the path degraded)", h.p95Before)
	}
}

// pathSim feeds one cell the way a probe's exports arrive (one cumulative
// histogram and attempts/failures counters every 15 s) and ticks the
// Aggregator every second, keeping the events.
type pathSim struct {
	t      *testing.T
	a      *Aggregator
	key    pathstate.CellKey
	start  time.Time
	ts     time.Time // time of the next export
	cum    []uint64
	sum    float64
	att    float64
	fail   float64
	events []pathstate.Event
	view   *View
}

func newPathSim(t *testing.T, mod func(*Config)) *pathSim {
	a, _ := testAggregator(t, mod)
	return &pathSim{t: t, a: a, key: pathMD, start: t0.Add(-5 * time.Second), ts: t0, cum: make([]uint64, len(testBounds)+1)}
}

// Latency buckets of testBounds (10, 20, 40).
const (
	fast = 0 // (0,10]: 5 ms samples
	slow = 2 // (20,40]: 30 ms samples
)

// step exports 10 samples in bucket b (or nothing if b < 0) and ticks
// through the next 15 s.
func (p *pathSim) step(b int) {
	if b >= 0 {
		p.cum[b] += 10
		p.sum += 10 * []float64{5, 15, 30, 60}[b]
		p.att += 10
		p.a.Observe(hist("h", p.key, p.start, p.ts, slices.Clone(p.cum), p.sum))
		p.a.Observe(counter(KindAttempts, "a", p.key, p.start, p.ts, p.att))
		p.a.Observe(counter(KindFailures, "f", p.key, p.start, p.ts, p.fail))
	}
	for i := 1; i <= 15; i++ {
		changed, _, ev := p.a.Collect(p.ts.Add(time.Duration(i) * time.Second))
		p.events = append(p.events, ev...)
		for _, c := range changed {
			if c.View.Key == p.key {
				p.view = c.View
			}
		}
	}
	p.ts = p.ts.Add(15 * time.Second)
}

// steps runs n steps of bucket b.
func (p *pathSim) steps(n, b int) {
	for range n {
		p.step(b)
	}
}

// until runs steps of bucket b until cond holds, at most max steps.
func (p *pathSim) until(b, max int, what string, cond func() bool) {
	p.t.Helper()
	for range max {
		if cond() {
			return
		}
		p.step(b)
	}
	p.t.Fatalf("%s: not after %d steps", what, max)
}

func (p *pathSim) health() *health { return &p.a.cellFor(p.key).health }

func (p *pathSim) kinds() string {
	var ks []string
	for _, e := range p.events {
		ks = append(ks, string(e.Kind))
	}
	return strings.Join(ks, " ")
}

// TestLongIncidentDoesNotRecoverByMovingTheBaseline runs a path healthy for
// an hour, then slow for 70 minutes, longer than the history: by then the
// baseline (the hour's p95 and p50) is the incident's own, and the path is
// still degraded. Only real recovery ends it, judged against the baseline
// frozen when it degraded.
func TestLongIncidentDoesNotRecoverByMovingTheBaseline(t *testing.T) {
	p := newPathSim(t, nil)
	p.steps(240, fast) // 1 h: baseline p95 9.5 ms (all in (0,10])
	p.steps(280, slow) // 70 min at 30 ms
	if got := p.kinds(); got != "degraded" {
		t.Fatalf("events during a 70 min incident: %q, want one degraded", got)
	}
	deg := p.events[0]
	if !(deg.P95Before <= 10) || !(deg.P95After > 20) {
		t.Errorf("degraded: baseline p95 %g, p95 %g; want ≤ 10 and > 20", deg.P95Before, deg.P95After)
	}
	if p.view.State != "degraded" || !(p.view.BaseP50 > 20) {
		t.Fatalf("after 70 min: state %s, baseline p50 %g; want degraded with the baseline dragged above 20 ms", p.view.State, p.view.BaseP50)
	}
	p.until(fast, 40, "recovery", func() bool { return len(p.events) == 2 })
	if rec := p.events[1]; rec.Kind != pathstate.Recovered || rec.P95Before != deg.P95Before || !(rec.P95After <= 10) {
		t.Errorf("recovered: %+v; want the frozen baseline %g and p95 back ≤ 10", rec, deg.P95Before)
	}
}

// TestNoJudgementWhileStale: a path whose degradation (or recovery) is
// pending when its probe falls silent gets a stale event and nothing
// else while stale, although its window still holds enough samples for a
// judgement; when data comes back it gets a back event and a full hold
// before a degraded/recovered one.
func TestNoJudgementWhileStale(t *testing.T) {
	hold := 2 * time.Minute
	p := newPathSim(t, func(c *Config) { c.Events.Hold = hold })
	h := p.health()
	p.steps(240, fast)
	// Slow until a degradation is pending, then silence.
	p.until(slow, 10, "degradation pending", func() bool { return h.pendingSince != 0 })
	lastData := p.ts.Add(-15 * time.Second)
	p.steps(16, -1) // 4 min of silence
	if got := p.kinds(); got != "stale" {
		t.Fatalf("events during silence: %q, want only stale", got)
	}
	if st := p.events[0]; !st.Time.Equal(lastData.Add(31*time.Second)) || h.degraded {
		t.Errorf("stale at %v (want 31 s after the last data), degraded=%v", st.Time.Sub(lastData), h.degraded)
	}
	// The hold would have elapsed with samples enough for a judgement.
	if ws := p.view.Wins[1]; ws.Count < 5 {
		t.Fatalf("5m window has %d samples after the silence; the test needs ≥ 5", ws.Count)
	}
	p.step(slow)
	if got := p.kinds(); got != "stale back" {
		t.Fatalf("events when data returns: %q, want stale back", got)
	}
	back := p.events[1].Time
	p.until(slow, 20, "degraded after back", func() bool { return len(p.events) == 3 })
	if d := p.events[2]; d.Kind != pathstate.Degraded || d.Time.Sub(back) < hold {
		t.Fatalf("after back: %s %v after back, want degraded at least %v after it", d.Kind, d.Time.Sub(back), hold)
	}

	// Now the other way: recovery pending, then silence.
	p.until(fast, 40, "recovery pending", func() bool { return h.pendingSince != 0 })
	p.steps(16, -1)
	if got := p.kinds(); got != "stale back degraded stale" {
		t.Fatalf("events: %q, want no recovered while stale", got)
	}
	if ws := p.view.Wins[1]; ws.Count < 5 || !h.degraded {
		t.Fatalf("5m window %d samples, degraded=%v; the test needs ≥ 5 and still degraded", ws.Count, h.degraded)
	}
	p.step(fast)
	back = p.events[len(p.events)-1].Time
	p.until(fast, 20, "recovered after back", func() bool { return len(p.events) == 6 })
	if got := p.kinds(); got != "stale back degraded stale back recovered" {
		t.Fatalf("events: %q", got)
	}
	if r := p.events[5]; r.Time.Sub(back) < hold {
		t.Errorf("recovered %v after back, want at least %v", r.Time.Sub(back), hold)
	}
}

// TestYoungPathDegrades: a path only ten minutes old (a fresh collector, a
// demo) that slows down turns degraded. The baseline used to be the whole
// history, the judged window included, so two slow exports in a 5-minute
// window dragged a 10-minute baseline up with them and the slowdown was
// compared mostly with itself: no event, however slow.
func TestYoungPathDegrades(t *testing.T) {
	p := newPathSim(t, nil)
	p.steps(40, fast) // 10 min at 5 ms
	p.until(slow, 20, "a young path's slowdown judged", func() bool { return strings.Contains(p.kinds(), "degraded") })
	if deg := p.events[0]; !(deg.P95Before <= 10) || !(deg.P95After > 20) {
		t.Errorf("degraded: baseline p95 %g, p95 %g; want ≤ 10 (the path's past) and > 20", deg.P95Before, deg.P95After)
	}
}
