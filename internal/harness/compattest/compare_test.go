package compattest

import (
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/bantay-noc/bantay/dashboards"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

func TestToleranceEqual(t *testing.T) {
	for _, c := range []struct {
		a, b float64
		want bool
	}{
		{1, 1, true},
		{1, 1 + 1e-12, true},
		{1, 1 + 1e-6, false},
		{1e6, 1e6 + 1e-4, true},
		{0, 1e-13, true},
		{0, 1e-9, false},
		{math.NaN(), math.NaN(), true},
		{math.NaN(), 0, false},
		{math.Inf(1), math.Inf(1), true},
		{math.Inf(1), math.MaxFloat64, false},
		{math.Inf(1), math.Inf(-1), false},
	} {
		if got := Strict.Equal(c.a, c.b); got != c.want {
			t.Errorf("Strict.Equal(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// A histogram_quantile answer on a bucket bound (Bantay) equals one in the
// bucket above it (Prometheus 2.42) only with the bucket bounds given, and
// only in that direction and for that one bucket.
func TestToleranceBucketBounds(t *testing.T) {
	hq := Tolerance{Rel: Strict.Rel, Abs: Strict.Abs, BucketBounds: promtest.LatencyBucketBounds}
	for _, c := range []struct {
		a, b float64
		want bool
	}{
		{25, 30.000000000000004, true}, // the case seen against 2.42
		{25, 27.5, true},
		{25, 25, true},
		{25, 30.1, false},   // two buckets up
		{25, 24.9, false},   // below the bound
		{30, 25, false},     // the other direction
		{26, 30, false},     // not on a bound
		{5000, 6000, false}, // above the highest bound
		{0.5, 1, true},
	} {
		if got := hq.Equal(c.a, c.b); got != c.want {
			t.Errorf("with bucket bounds: Equal(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	if Strict.Equal(25, 30.000000000000004) {
		t.Error("Strict accepts a bucket-bound difference without bucket bounds")
	}
}

func TestDiffResults(t *testing.T) {
	m := func(city string) model.Metric { return model.Metric{"src_city": model.LabelValue(city)} }
	vec := func(vals ...float64) promtest.Result {
		var v model.Vector
		for i, x := range vals {
			v = append(v, &model.Sample{Metric: m([]string{"Manila", "Davao", "Baguio"}[i]), Value: model.SampleValue(x), Timestamp: 1000})
		}
		return promtest.Result{Value: v}
	}
	if d := DiffResults("a", vec(1, 2), "b", vec(1, 2+1e-12), Strict); len(d) != 0 {
		t.Errorf("equal vectors differ: %v", d)
	}
	// Order does not matter; values, membership and types do.
	swapped := vec(2, 1)
	swapped.Value.(model.Vector)[0].Metric, swapped.Value.(model.Vector)[1].Metric = m("Davao"), m("Manila")
	if d := DiffResults("a", vec(1, 2), "b", swapped, Strict); len(d) != 0 {
		t.Errorf("reordered vectors differ: %v", d)
	}
	for name, c := range map[string]struct {
		b    promtest.Result
		want string
	}{
		"value":   {vec(1, 2.5), `{src_city="Davao"}: a 2, b 2.5`},
		"missing": {vec(1), `series only in a: {src_city="Davao"}`},
		"extra":   {vec(1, 2, 3), `series only in b: {src_city="Baguio"}`},
		"type":    {promtest.Result{Value: model.Matrix{}}, "result type: a vector, b matrix"},
	} {
		d := DiffResults("a", vec(1, 2), "b", c.b, Strict)
		if len(d) != 1 || d[0] != c.want {
			t.Errorf("%s: differences %q, want [%q]", name, d, c.want)
		}
	}

	mx := func(ts ...model.Time) promtest.Result {
		s := &model.SampleStream{Metric: m("Manila")}
		for _, t := range ts {
			s.Values = append(s.Values, model.SamplePair{Timestamp: t, Value: 1})
		}
		return promtest.Result{Value: model.Matrix{s}}
	}
	if d := DiffResults("a", mx(1, 2), "b", mx(1, 2), Strict); len(d) != 0 {
		t.Errorf("equal matrices differ: %v", d)
	}
	if d := DiffResults("a", mx(1, 2), "b", mx(1, 3), Strict); len(d) != 1 || !strings.Contains(d[0], "point 1") {
		t.Errorf("shifted point: %v", d)
	}
	if d := DiffResults("a", mx(1, 2), "b", mx(1), Strict); len(d) != 1 || !strings.Contains(d[0], "a has 2 points, b 1") {
		t.Errorf("missing point: %v", d)
	}
}

func TestDiffSetsAndLabelSets(t *testing.T) {
	if d := DiffSets("a", []string{"x", "y"}, "b", []string{"y", "x"}); d != nil {
		t.Errorf("equal sets differ: %v", d)
	}
	if d := DiffSets("a", []string{"x", "y"}, "b", []string{"y", "z"}); !slices.Equal(d, []string{`only in a: "x"`, `only in b: "z"`}) {
		t.Errorf("differences %q", d)
	}
	a := []model.LabelSet{{"__name__": "up", "job": "x"}}
	b := []model.LabelSet{{"__name__": "up", "job": "y"}}
	if d := DiffLabelSets("a", a, "b", b); len(d) != 2 {
		t.Errorf("differences %q", d)
	}
	// A flood of differences is cut short with a count.
	var many []string
	for i := range 25 {
		many = append(many, strings.Repeat("v", i+1))
	}
	if d := DiffSets("a", many, "b", nil); len(d) != maxDiffs+1 || d[maxDiffs] != "… and 15 more differences" {
		t.Errorf("%d lines, last %q", len(d), d[len(d)-1])
	}
}

func TestWindowStarts(t *testing.T) {
	got, err := WindowStarts(`rate(x[1m] offset 10s) / y + sum(z offset 5s) + increase(x[30s])`, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{70 * time.Second, 5 * time.Minute, 5*time.Minute + 5*time.Second, 30 * time.Second}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("window starts %v, want %v", got, want)
	}
	for _, bad := range []string{`max_over_time(rate(x[1m])[5m:1m])`, `x @ 1000`, `rate(x[1m]`} {
		if _, err := WindowStarts(bad, time.Minute); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestChooseGridAvoidsWindowStarts(t *testing.T) {
	end := time.UnixMilli(1_000_000)
	deltas := []time.Duration{time.Minute, 5 * time.Minute}
	// Samples exactly one minute before the first three candidate ends and
	// their grid points.
	samples := map[int64]bool{}
	for i := range int64(3) {
		for k := range int64(11) {
			samples[end.UnixMilli()-i-k*2000-60_000] = true
		}
	}
	g, err := ChooseGrid(samples, end, 20*time.Second, 2*time.Second, deltas, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Times()) != 11 || !g.End.Before(end.Add(-2*time.Millisecond)) {
		t.Errorf("grid %+v with %d times", g, len(g.Times()))
	}
	if at := onBoundary(samples, g.Times(), deltas); !at.IsZero() {
		t.Errorf("evaluation at %v has a sample on a window start", at)
	}
	// With a sample at every millisecond no grid exists.
	dense := map[int64]bool{}
	for ms := end.UnixMilli() - 70_000; ms <= end.UnixMilli(); ms++ {
		dense[ms] = true
	}
	if _, err := ChooseGrid(dense, end, 2*time.Second, time.Second, deltas[:1], 50); err == nil {
		t.Error("grid chosen although every millisecond has a sample")
	}
}

// The test alert of the alerting scenario is the shipped one with shorter
// windows: same name, labels, annotations and output label set (the same
// vector matching), so what Alertmanager receives is what production sends.
func TestFastAlertMatchesShippedRule(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	load := func(name string, content []byte) rulefmt.Rule {
		t.Helper()
		groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, p, promslog.NewNopLogger())
		if len(errs) > 0 {
			t.Fatalf("%s: %v", name, errs)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert == "BantayPathLatencySLOBreach" {
					return r
				}
			}
		}
		t.Fatalf("%s: no BantayPathLatencySLOBreach", name)
		return rulefmt.Rule{}
	}
	shippedYAML, err := dashboards.RuleFiles.ReadFile("rules/bantay-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	fastYAML := readFile(t, "testdata/fast-path-latency-alert.yml")
	shipped, fast := load("shipped", shippedYAML), load("fast", fastYAML)
	if !maps.Equal(shipped.Labels, fast.Labels) {
		t.Errorf("labels: shipped %v, test %v", shipped.Labels, fast.Labels)
	}
	if !maps.Equal(shipped.Annotations, fast.Annotations) {
		t.Errorf("annotations differ:\nshipped %v\ntest    %v", shipped.Annotations, fast.Annotations)
	}
	if fast.For >= shipped.For {
		t.Errorf("test for: %v is not shorter than the shipped %v", fast.For, shipped.For)
	}
	matching := func(expr string) *parser.VectorMatching {
		t.Helper()
		e, err := p.ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		b, ok := e.(*parser.BinaryExpr)
		if !ok {
			t.Fatalf("%s: not a comparison at the top", expr)
		}
		return b.VectorMatching
	}
	sm, fm := matching(shipped.Expr), matching(fast.Expr)
	if sm.Card != fm.Card || sm.On != fm.On || !slices.Equal(sm.MatchingLabels, fm.MatchingLabels) || !slices.Equal(sm.Include, fm.Include) {
		t.Errorf("vector matching: shipped %+v, test %+v", sm, fm)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExtrapolationDiffers(t *testing.T) {
	pts := func(tv ...float64) []model.SamplePair {
		var out []model.SamplePair
		for i := 0; i+1 < len(tv); i += 2 {
			out = append(out, model.SamplePair{Timestamp: model.Time(tv[i] * 1000), Value: model.SampleValue(tv[i+1])})
		}
		return out
	}
	for _, c := range []struct {
		name    string
		samples []model.SamplePair
		start   int64
		counter bool
		want    bool
	}{
		// A counter born inside the window: 2.42 extrapolates to its zero
		// point (1 s before the first sample), 3.x half a spacing.
		{"counter starts in window", pts(5, 1, 6, 2, 7, 3), 0, true, true},
		{"counter runs through window start", pts(1, 1, 2, 2, 3, 3), 0, true, false},
		{"old counter, gap at window start", pts(5, 100, 6, 101, 7, 102), 0, true, false},
		{"delta is not clamped", pts(5, 1, 6, 2, 7, 3), 0, false, false},
		{"one sample", pts(5, 1), 0, true, false},
	} {
		if got := ExtrapolationDiffers(c.samples, c.start, 10_000, c.counter); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}

	// Through an expression: only series matched by a rate()/increase()
	// selector count, at the times whose window holds their start.
	raw := model.Matrix{
		{Metric: model.Metric{"__name__": "young", "city": "Manila"}, Values: pts(5, 1, 6, 2, 7, 3, 8, 4, 9, 5, 10, 6, 11, 7, 12, 8, 13, 9, 14, 10, 15, 11, 16, 12, 17, 13, 18, 14, 19, 15)},
		{Metric: model.Metric{"__name__": "young", "city": "Davao"}, Values: pts(1, 100, 2, 101, 3, 102, 4, 103, 5, 104, 6, 105)},
	}
	x, err := NewExtrapolation(`sum(rate(young{city="Manila"}[10s])) + max_over_time(young[1m])`, raw)
	if err != nil {
		t.Fatal(err)
	}
	if differs, why := x.DiffersAt(time.UnixMilli(7500)); !differs || !strings.Contains(why, `city="Manila"`) {
		t.Errorf("at 7.5 s (window holds the start): %v %q", differs, why)
	}
	if differs, why := x.DiffersAt(time.UnixMilli(19500)); differs {
		t.Errorf("at 19.5 s (window after the start): differs because %s", why)
	}
	y, err := NewExtrapolation(`rate(young{city="Davao"}[3500ms])`, raw)
	if err != nil {
		t.Fatal(err)
	}
	if differs, why := y.DiffersAt(time.UnixMilli(4500)); differs {
		t.Errorf("old counter: differs because %s", why)
	}
}
