package promtest

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AllValue is the value a dashboard variable gets when "All" is selected and
// the variable's custom all value is ".*" (as Bantay's dashboards set it).
// Grafana inserts a custom all value verbatim, without escaping.
const AllValue = "$__all"

// grafanaVariable is Grafana's own variable syntax regexp
// (public/app/features/variables/utils.ts, variableRegex): $var,
// [[var]] / [[var:format]], ${var} / ${var.field} / ${var:format}.
var grafanaVariable = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

// ExpandGrafanaVars expands Grafana template variables in a Prometheus query
// the way Grafana's Prometheus data source does before it sends the query.
//
// vars maps a variable name (without "$") to its selected values:
//   - one value: a single-value variable, inserted with Grafana's
//     prometheusRegularEscape (backslash and single quote escaped);
//   - several values: a multi-value variable, each value regex-escaped for
//     use inside a PromQL string (prometheusSpecialRegexEscape) and joined as
//     "(a|b)";
//   - []string{AllValue}: "All" selected with the custom all value ".*".
//
// Names starting with "__" ($__rate_interval, $__interval, $__range, …) are
// built-ins and are inserted verbatim; BuiltinVars computes them.
// ${var:format} supports Grafana's regex, pipe, csv, raw, singlequote,
// doublequote and glob formats; an unknown format falls back to the default.
// Variables not in vars are left as they are, as Grafana does, so that a
// parser downstream reports them.
func ExpandGrafanaVars(expr string, vars map[string][]string) string {
	return expand(expr, vars, nil)
}

// ExpandDashboardVars is ExpandGrafanaVars with the dashboard's variable
// definitions (from DashboardVariables), which make the expansion exact: a
// variable that is multi-value or offers "All" is regex-escaped even when one
// value is selected, as Grafana does, and "All" becomes the variable's own
// custom all value. Variables without a definition (or not in defs) are
// treated as by ExpandGrafanaVars.
func ExpandDashboardVars(expr string, vars map[string][]string, defs []Variable) string {
	byName := make(map[string]Variable, len(defs))
	for _, d := range defs {
		byName[d.Name] = d
	}
	return expand(expr, vars, byName)
}

func expand(expr string, vars map[string][]string, defs map[string]Variable) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name, format := sub[1], ""
		switch {
		case sub[2] != "":
			name, format = sub[2], sub[3]
		case sub[4] != "":
			name, format = sub[4], sub[6]
		}
		values, ok := vars[name]
		if !ok {
			return m
		}
		if strings.HasPrefix(name, "__") {
			return strings.Join(values, ",")
		}
		def, hasDef := defs[name]
		if len(values) == 1 && values[0] == AllValue {
			if hasDef && def.AllValue != "" {
				return def.AllValue
			}
			return ".*"
		}
		multi := len(values) > 1
		if hasDef {
			multi = def.Multi || def.IncludeAll
		}
		return formatVariable(values, format, multi)
	})
}

func formatVariable(values []string, format string, multi bool) string {
	switch format {
	case "regex":
		// Grafana's regex formatter escapes for a regexp, not for a PromQL
		// string: its single backslashes are only valid inside backquotes.
		escaped := mapStrings(values, escapeRegex)
		if len(escaped) == 1 {
			return escaped[0]
		}
		return "(" + strings.Join(escaped, "|") + ")"
	case "pipe":
		return strings.Join(values, "|")
	case "csv", "raw":
		return strings.Join(values, ",")
	case "singlequote":
		return strings.Join(mapStrings(values, func(v string) string {
			return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
		}), ",")
	case "doublequote":
		return strings.Join(mapStrings(values, func(v string) string {
			return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
		}), ",")
	case "glob":
		if len(values) == 1 {
			return values[0]
		}
		return "{" + strings.Join(values, ",") + "}"
	}
	// Grafana's Prometheus data source, interpolateQueryExpr.
	if !multi {
		return prometheusRegularEscape(strings.Join(values, ","))
	}
	escaped := mapStrings(values, prometheusSpecialRegexEscape)
	if len(escaped) == 1 {
		return escaped[0]
	}
	return "(" + strings.Join(escaped, "|") + ")"
}

// prometheusRegularEscape is Grafana's function of the same name, in its
// default ("classic") form: a backslash is doubled and a single quote becomes
// \\' (both are meant for a PromQL string literal).
func prometheusRegularEscape(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return strings.ReplaceAll(v, `'`, `\\'`)
}

// prometheusSpecialRegexEscape is Grafana's function of the same name, in its
// default form: regexp metacharacters get a backslash that is itself escaped
// for the PromQL string literal, so "a.b" becomes `a\\.b`, which the PromQL
// string turns into the regexp a\.b.
func prometheusSpecialRegexEscape(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '\\':
			b.WriteString(`\\\\`)
			continue
		case '$', '^', '*', '{', '}', '[', ']', '+', '?', '.', '(', ')', '|':
			b.WriteString(`\\`)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// escapeRegex is Grafana's escapeRegex (lodash's escapeRegExp plus "/").
func escapeRegex(v string) string {
	var b strings.Builder
	for _, r := range v {
		if strings.ContainsRune(`\^$.|?*+()[]{}/`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func mapStrings(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// BuiltinVars returns Grafana's built-in interval variables for a query
// with the given step and time range and the data source's scrape interval
// (Grafana's default is 15s), written the way Grafana's Prometheus data
// source (pkg/promlib/models, interpolateVariables) writes them:
//   - $__interval: the step in Grafana's interval notation (its largest
//     whole unit: "15s", "1m", "2h");
//   - $__rate_interval: max(step + scrape, 4 * scrape) in Go's duration
//     notation ("1m0s", "2m15s"), which PromQL accepts;
//   - $__range: the range in whole seconds, rounded ("3600s");
//   - their _ms and _s forms.
func BuiltinVars(step, rng, scrape time.Duration) map[string][]string {
	rate := max(step+scrape, 4*scrape)
	rangeS := int64(math.Round(float64(rng.Milliseconds()) / 1000))
	return map[string][]string{
		"__interval":         {grafanaInterval(step)},
		"__interval_ms":      {itoa(step.Milliseconds())},
		"__rate_interval":    {rate.String()},
		"__rate_interval_ms": {itoa(rate.Milliseconds())},
		"__range":            {itoa(rangeS) + "s"},
		"__range_s":          {itoa(rangeS)},
		"__range_ms":         {itoa(rng.Milliseconds())},
	}
}

// grafanaInterval writes d in Grafana's interval notation: the count of its
// largest whole unit only (90s is "1m"), "1ms" below a millisecond.
func grafanaInterval(d time.Duration) string {
	const day = 24 * time.Hour
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{365 * day, "y"}, {day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d >= u.unit {
			return itoa(int64(d/u.unit)) + u.name
		}
	}
	return "1ms"
}

// AlignToStep rounds t down to a multiple of step, as Grafana's Prometheus
// data source does with the start and end of every query it sends.
func AlignToStep(t time.Time, step time.Duration) time.Time {
	if step <= 0 {
		return t
	}
	ns := t.UnixNano()
	return time.Unix(0, ns-((ns%int64(step))+int64(step))%int64(step)).UTC()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
