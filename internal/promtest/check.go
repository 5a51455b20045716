package promtest

import (
	"context"
	"fmt"
	"maps"
	"time"
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
	Values    []string
	Err       error
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

// CheckDashboards runs every Prometheus query of the dashboards at paths
// against the Prometheus HTTP API at baseURL (Bantay or Prometheus) the way
// Grafana's Prometheus data source does: variables expanded, range queries
// through /api/v1/query_range with a step, instant (table) queries through
// /api/v1/query at the end of the range, and label_values() variables
// through /api/v1/label/<name>/values with match[]. Loki queries are left
// out. The report holds every outcome; Problems lists the empty ones.
func CheckDashboards(ctx context.Context, baseURL string, paths []string, opts CheckOptions) (DashboardReport, error) {
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = 15 * time.Second
	}
	if opts.Step <= 0 || !opts.End.After(opts.Start) {
		return DashboardReport{}, fmt.Errorf("check dashboards: need Start < End and Step > 0, got %v..%v step %v", opts.Start, opts.End, opts.Step)
	}
	vars := BuiltinVars(opts.Step, opts.End.Sub(opts.Start), opts.ScrapeInterval)
	maps.Copy(vars, opts.Vars)

	c := NewClient(baseURL)
	var rep DashboardReport
	for _, path := range paths {
		qs, err := DashboardQueries(path)
		if err != nil {
			return rep, err
		}
		for _, q := range qs {
			if q.DatasourceType != "prometheus" {
				continue
			}
			qc := QueryCheck{Query: q, Expanded: ExpandGrafanaVars(q.Expr, vars)}
			var res Result
			if q.Instant {
				res, qc.Err = c.Query(ctx, qc.Expanded, opts.End)
			} else {
				res, qc.Err = c.QueryRange(ctx, qc.Expanded, opts.Start, opts.End, opts.Step)
			}
			qc.Series = res.Len()
			rep.Queries = append(rep.Queries, qc)
		}
		vs, err := DashboardVariables(path)
		if err != nil {
			return rep, err
		}
		title := ""
		if len(qs) > 0 {
			title = qs[0].Dashboard
		}
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
					match = []string{ExpandGrafanaVars(sel, vars)}
				}
				vc.Values, vc.Err = c.LabelValues(ctx, label, match, opts.Start, opts.End)
			}
			rep.Variables = append(rep.Variables, vc)
		}
	}
	return rep, nil
}
