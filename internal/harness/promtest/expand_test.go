package promtest

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestExpandGrafanaVars(t *testing.T) {
	vars := map[string][]string{
		"city":            {"Manila"},
		"cities":          {"Manila", "Cagayan de Oro"},
		"odd":             {"a.b", "c|d"},
		"quote":           {`it's`},
		"back":            {`a\b`},
		"all":             {AllValue},
		"__rate_interval": {"1m"},
		"__range":         {"1h"},
	}
	cases := []struct{ in, want string }{
		{`x{c="$city"}`, `x{c="Manila"}`},
		{`x{c="${city}"}`, `x{c="Manila"}`},
		{`x{c="[[city]]"}`, `x{c="Manila"}`},
		{`x{c=~"$cities"}`, `x{c=~"(Manila|Cagayan de Oro)"}`},
		// Multi-value: regexp metacharacters escaped for a PromQL string.
		{`x{c=~"$odd"}`, `x{c=~"(a\\.b|c\\|d)"}`},
		{`x{c=~"$all"}`, `x{c=~".*"}`},
		{`x{c="$quote"}`, `x{c="it\\'s"}`},
		{`x{c="$back"}`, `x{c="a\\b"}`},
		{`rate(x[$__rate_interval])`, `rate(x[1m])`},
		{`rate(x[${__range}])`, `rate(x[1h])`},
		// Formats.
		{"x{c=~`${odd:regex}`}", "x{c=~`(a\\.b|c\\|d)`}"},
		{`${cities:pipe}`, `Manila|Cagayan de Oro`},
		{`${cities:csv}`, `Manila,Cagayan de Oro`},
		{`[[cities:csv]]`, `Manila,Cagayan de Oro`},
		{`${cities:singlequote}`, `'Manila','Cagayan de Oro'`},
		{`${cities:doublequote}`, `"Manila","Cagayan de Oro"`},
		{`${cities:glob}`, `{Manila,Cagayan de Oro}`},
		// Unknown variables and label_replace's $1 stay as they are.
		{`x{c="$unknown"}`, `x{c="$unknown"}`},
		{`label_replace(x, "a", "$1", "b", "(.*)")`, `label_replace(x, "a", "$1", "b", "(.*)")`},
		// $city is a whole word: $cityX is another (unknown) variable.
		{`$cityX $city`, `$cityX Manila`},
	}
	for _, c := range cases {
		if got := ExpandGrafanaVars(c.in, vars); got != c.want {
			t.Errorf("ExpandGrafanaVars(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

// The expansion of multi-value variables must give PromQL whose regexp
// matches exactly the chosen values, metacharacters included.
func TestExpandGrafanaVarsMatchesValues(t *testing.T) {
	values := []string{"a.b", "c|d", "e(f)", "g*", "h+i?", "[j]", "k{1}", "^l$", `m\n`}
	expr := ExpandGrafanaVars(`x{c=~"$v"}`, map[string][]string{"v": values})
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("parse %s: %v", expr, err)
	}
	m := e.(*parser.VectorSelector).LabelMatchers
	var matcher = m[0]
	if matcher.Name != "c" {
		matcher = m[1]
	}
	for _, v := range values {
		if !matcher.Matches(v) {
			t.Errorf("%s does not match %q", expr, v)
		}
	}
	for _, v := range []string{"aXb", "c", "d", "ef", "g", "hi", "j", "k{1}x", "l", `m`} {
		if matcher.Matches(v) {
			t.Errorf("%s matches %q, which was not selected", expr, v)
		}
	}
}

// With the variable definitions, a multi-value variable with one selected
// value is still regex-escaped, a single-value one is not, and "All" is the
// variable's own all value.
func TestExpandDashboardVars(t *testing.T) {
	defs := []Variable{
		{Name: "multi", Multi: true},
		{Name: "withall", IncludeAll: true, AllValue: "[A-Z].*"},
		{Name: "single"},
	}
	vars := map[string][]string{"multi": {"a.b"}, "withall": {AllValue}, "single": {"a.b"}, "undefined": {"a.b"}}
	cases := []struct{ in, want string }{
		{`$multi`, `a\\.b`},
		{`$withall`, `[A-Z].*`},
		{`$single`, `a.b`},
		{`$undefined`, `a.b`},
	}
	for _, c := range cases {
		if got := ExpandDashboardVars(c.in, vars, defs); got != c.want {
			t.Errorf("ExpandDashboardVars(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestBuiltinVars(t *testing.T) {
	v := BuiltinVars(30*time.Second, 6*time.Hour, 15*time.Second)
	// As Grafana's Prometheus data source writes them.
	want := map[string]string{
		"__interval":         "30s",
		"__interval_ms":      "30000",
		"__rate_interval":    "1m0s", // max(30s + 15s, 4 * 15s)
		"__rate_interval_ms": "60000",
		"__range":            "21600s",
		"__range_s":          "21600",
		"__range_ms":         "21600000",
	}
	for k, w := range want {
		if got := v[k]; len(got) != 1 || got[0] != w {
			t.Errorf("%s = %v, want %s", k, got, w)
		}
	}
	if len(v) != len(want) {
		t.Errorf("%d variables, want %d: %v", len(v), len(want), v)
	}
	v = BuiltinVars(90*time.Second, 1500*time.Millisecond, 15*time.Second)
	for k, w := range map[string]string{"__rate_interval": "1m45s", "__interval": "1m", "__range": "2s", "__range_s": "2", "__range_ms": "1500"} {
		if got := v[k][0]; got != w {
			t.Errorf("90s step, 1.5s range: %s = %s, want %s", k, got, w)
		}
	}
	// Every form is a valid PromQL range.
	p := parser.NewParser(parser.Options{})
	for _, k := range []string{"__interval", "__rate_interval", "__range"} {
		if _, err := p.ParseExpr("rate(up[" + v[k][0] + "])"); err != nil {
			t.Errorf("%s = %s: %v", k, v[k][0], err)
		}
	}
}

func TestGrafanaInterval(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1ms", 500 * time.Microsecond: "1ms", 20 * time.Millisecond: "20ms", 15 * time.Second: "15s",
		time.Minute: "1m", 90 * time.Second: "1m", 2 * time.Hour: "2h", 36 * time.Hour: "1d", 400 * 24 * time.Hour: "1y",
	} {
		if got := grafanaInterval(d); got != want {
			t.Errorf("grafanaInterval(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestAlignToStep(t *testing.T) {
	at := time.Date(2026, 11, 26, 1, 2, 37, 500_000_000, time.UTC)
	for step, want := range map[time.Duration]time.Time{
		15 * time.Second: time.Date(2026, 11, 26, 1, 2, 30, 0, time.UTC),
		time.Minute:      time.Date(2026, 11, 26, 1, 2, 0, 0, time.UTC),
		time.Hour:        time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC),
		0:                at,
	} {
		if got := AlignToStep(at, step); !got.Equal(want) {
			t.Errorf("AlignToStep(%v, %v) = %v, want %v", at, step, got, want)
		}
	}
}

func TestParseLabelValues(t *testing.T) {
	cases := []struct{ in, sel, label string }{
		{`label_values(up, job)`, `up`, `job`},
		{`label_values(x{a=~"$a", b="c, d"}, src_city)`, `x{a=~"$a", b="c, d"}`, `src_city`},
		{`label_values(carrier)`, ``, `carrier`},
	}
	for _, c := range cases {
		sel, label, err := ParseLabelValues(c.in)
		if err != nil || sel != c.sel || label != c.label {
			t.Errorf("ParseLabelValues(%s) = %q, %q, %v; want %q, %q", c.in, sel, label, err, c.sel, c.label)
		}
	}
	if _, _, err := ParseLabelValues(`query_result(up)`); err == nil {
		t.Error("query_result(...) accepted as label_values")
	}
}
