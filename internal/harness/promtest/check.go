package promtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// QueryCheck is the outcome of one dashboard query against an API.
type QueryCheck struct {
	Query    Query
	Expanded string // the query as sent, variables expanded
	Series   int    // series in the answer
	Err      error
}

// VariableCheck is the outcome of one label_values() variable against an API.
type VariableCheck struct {
	Dashboard string
	Variable  Variable
	// Values is the answer of /api/v1/label/<name>/values?match[]=…, what
	// current Grafana asks.
	Values []string
	// SeriesValues are the label's values in the answer of
	// /api/v1/series?match[]=…, what Grafana asks of data sources that do
	// not filter label values; they must agree with Values.
	SeriesValues []string
	// InLabels tells whether /api/v1/labels?match[]=… lists the label.
	InLabels bool
	Err      error
}

// DashboardReport is what CheckDashboards found.
type DashboardReport struct {
	Queries   []QueryCheck
	Variables []VariableCheck
}

// Problems lists, one line each, the queries and variables that failed or
// returned nothing.
func (r DashboardReport) Problems() []string {
	var out []string
	for _, q := range r.Queries {
		switch {
		case q.Err != nil:
			out = append(out, fmt.Sprintf("%s / %s [%s]: %v\n    query: %s", q.Query.Dashboard, q.Query.Panel, q.Query.RefID, q.Err, q.Expanded))
		case q.Series == 0:
			out = append(out, fmt.Sprintf("%s / %s [%s]: no data\n    query: %s", q.Query.Dashboard, q.Query.Panel, q.Query.RefID, q.Expanded))
		}
	}
	for _, v := range r.Variables {
		switch {
		case v.Err != nil:
			out = append(out, fmt.Sprintf("%s / variable %s: %v", v.Dashboard, v.Variable.Name, v.Err))
		case len(v.Values) == 0:
			out = append(out, fmt.Sprintf("%s / variable %s: no values for %s", v.Dashboard, v.Variable.Name, v.Variable.Query))
		case !slices.Equal(v.Values, v.SeriesValues):
			out = append(out, fmt.Sprintf("%s / variable %s: label values %v, but the series API gives %v", v.Dashboard, v.Variable.Name, v.Values, v.SeriesValues))
		case !v.InLabels:
			out = append(out, fmt.Sprintf("%s / variable %s: /api/v1/labels does not list the label", v.Dashboard, v.Variable.Name))
		}
	}
	return out
}

// CheckOptions says how CheckDashboards calls the API.
type CheckOptions struct {
	// Vars are the selected values of the dashboard variables (see
	// ExpandGrafanaVars). Built-ins missing here are filled in by BuiltinVars
	// from Step, End-Start and ScrapeInterval.
	Vars       map[string][]string
	Start, End time.Time
	// Step of range queries; Grafana derives it from the panel width, here it
	// is fixed.
	Step time.Duration
	// ScrapeInterval is the data source's "scrape interval" setting, which
	// Grafana uses for $__rate_interval; 15s (the probe interval) when zero.
	ScrapeInterval time.Duration
}

// maxRepeats bounds the queries one repeated panel may issue in a check.
const maxRepeats = 64

// CheckDashboards runs every Prometheus query of the dashboards at paths
// against the Prometheus HTTP API at baseURL (Bantay or Prometheus) the way
// Grafana's Prometheus data source does: label_values() variables through
// /api/v1/label/<name>/values with match[] (and, as a cross-check, through
// /api/v1/series and /api/v1/labels, which older Grafana versions and the
// query editor use); variables expanded (a
// single-value variable gets the first of several selected values, "All"
// resolves to the values the API offers); range queries through
// /api/v1/query_range with a step, instant (table) queries through
// /api/v1/query at the end of the range (both with the range aligned to the
// step, as Grafana sends them); a repeated panel once per value of
// its repeat variables (a repeated query counts as empty only when every
// repetition is). Loki queries are left out. The report holds every
// outcome; Problems lists the failed and empty ones.
func CheckDashboards(ctx context.Context, baseURL string, paths []string, opts CheckOptions) (DashboardReport, error) {
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = 15 * time.Second
	}
	if opts.Step <= 0 || !opts.End.After(opts.Start) {
		return DashboardReport{}, fmt.Errorf("check dashboards: need Start < End and Step > 0, got %v..%v step %v", opts.Start, opts.End, opts.Step)
	}
	c := NewClient(baseURL)
	// Grafana sends every query with its start and end rounded down to a
	// multiple of the step; $__range stays the dashboard's own range.
	start, end := AlignToStep(opts.Start, opts.Step), AlignToStep(opts.End, opts.Step)
	var rep DashboardReport
	for _, path := range paths {
		qs, err := DashboardQueries(path)
		if err != nil {
			return rep, err
		}
		vs, err := DashboardVariables(path)
		if err != nil {
			return rep, err
		}
		title := ""
		if len(qs) > 0 {
			title = qs[0].Dashboard
		}

		vars := BuiltinVars(opts.Step, opts.End.Sub(opts.Start), opts.ScrapeInterval)
		maps.Copy(vars, opts.Vars)
		// What "All" stands for, per variable, for repeated panels.
		allValues := map[string][]string{}
		// Variables in dashboard order: each may refer to the ones before it.
		for _, v := range vs {
			if v.Type != "query" || v.DatasourceType != "prometheus" {
				continue
			}
			vc := VariableCheck{Dashboard: title, Variable: v}
			sel, label, err := ParseLabelValues(v.Query)
			if err != nil {
				vc.Err = err
			} else {
				var match []string
				if sel != "" {
					match = []string{ExpandDashboardVars(sel, vars, vs)}
				}
				vc.Values, vc.Err = c.LabelValues(ctx, label, match, opts.Start, opts.End)
				if vc.Err == nil && len(match) > 0 {
					vc.SeriesValues, vc.InLabels, vc.Err = seriesLabelValues(ctx, c, label, match, opts.Start, opts.End)
				} else {
					vc.SeriesValues, vc.InLabels = vc.Values, true
				}
			}
			rep.Variables = append(rep.Variables, vc)
			allValues[v.Name] = vc.Values
			chosen, ok := vars[v.Name]
			if !ok || len(chosen) == 0 {
				continue
			}
			isAll := len(chosen) == 1 && chosen[0] == AllValue
			switch {
			case isAll && !v.IncludeAll, !isAll && len(chosen) > 1 && !v.Multi:
				// The dashboard cannot hold this selection; Grafana would
				// show the first value.
				if isAll {
					chosen = vc.Values
				}
				if len(chosen) > 0 {
					vars[v.Name] = chosen[:1]
				}
			case isAll && v.AllValue == "":
				// Without a custom all value Grafana sends every value.
				vars[v.Name] = vc.Values
			}
		}

		for _, q := range qs {
			if q.DatasourceType != "prometheus" {
				continue
			}
			qc := QueryCheck{Query: q}
			for i, rv := range repeatCombinations(q.Repeat, vars, allValues) {
				expanded := ExpandDashboardVars(q.Expr, rv, vs)
				if i == 0 {
					qc.Expanded = expanded
				}
				var res Result
				var err error
				if q.Instant {
					res, err = c.Query(ctx, expanded, end)
				} else {
					res, err = c.QueryRange(ctx, expanded, start, end, opts.Step)
				}
				if err != nil {
					qc.Err, qc.Expanded = err, expanded
					break
				}
				qc.Series += res.Len()
			}
			rep.Queries = append(rep.Queries, qc)
		}
	}
	return rep, nil
}

// repeatCombinations returns the variable sets Grafana runs a repeated
// panel's query with: one per combination of single values of the repeat
// variables (at most maxRepeats), or just vars for a panel without repeat.
func repeatCombinations(repeat []string, vars, allValues map[string][]string) []map[string][]string {
	combos := []map[string][]string{vars}
	for _, name := range repeat {
		values := vars[name]
		if len(values) == 1 && values[0] == AllValue {
			values = allValues[name]
		}
		if len(values) == 0 {
			continue
		}
		var next []map[string][]string
		for _, c := range combos {
			for _, v := range values {
				if len(next) == maxRepeats {
					break
				}
				m := maps.Clone(c)
				m[name] = []string{v}
				next = append(next, m)
			}
		}
		combos = next
	}
	return combos
}

// seriesLabelValues answers a label_values(selector, label) variable the
// other two ways Grafana can: from /api/v1/series and /api/v1/labels.
func seriesLabelValues(ctx context.Context, c *Client, label string, match []string, start, end time.Time) ([]string, bool, error) {
	series, err := c.Series(ctx, match, start, end)
	if err != nil {
		return nil, false, err
	}
	seen := map[string]bool{}
	for _, ls := range series {
		if v, ok := ls[model.LabelName(label)]; ok && v != "" {
			seen[string(v)] = true
		}
	}
	names, err := c.Labels(ctx, match, start, end)
	if err != nil {
		return nil, false, err
	}
	return slices.Sorted(maps.Keys(seen)), slices.Contains(names, label), nil
}
