package promtest

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Query is one query target of a dashboard panel.
type Query struct {
	Dashboard string // dashboard title
	Panel     string // panel title
	PanelType string // panel plugin id: timeseries, heatmap, table, logs, …
	RefID     string
	// DatasourceType is the plugin type of the target's data source
	// ("prometheus", "loki"), resolved through data-source variables.
	DatasourceType string
	Expr           string
	// Instant is true for instant queries (table panels); range otherwise.
	Instant bool
	// Format is the target's format ("time_series", "table", "heatmap").
	Format string
	// Repeat names the variables the panel is repeated over: its row's
	// repeat variable first, then its own. Grafana runs the query once per
	// value, with the variable set to that single value.
	Repeat []string
}

// Variable is one templating variable of a dashboard.
type Variable struct {
	Name  string
	Type  string // query, datasource, custom, interval, …
	Query string // label_values(...) for a Prometheus query variable; the plugin type for a datasource variable
	// DatasourceType is the plugin type of the data source the query runs on.
	DatasourceType string
	Multi          bool
	IncludeAll     bool
	AllValue       string
}

// dashboardJSON is the subset of Grafana's dashboard model the tests read. It
// is decoded loosely on purpose: the Foundation SDK's types check the schema
// separately, and this also has to read hand-written dashboards.
type dashboardJSON struct {
	Title      string      `json:"title"`
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []variableJSON `json:"list"`
	} `json:"templating"`
}

type panelJSON struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Repeat     string          `json:"repeat"`
	Datasource *datasourceJSON `json:"datasource"`
	Targets    []targetJSON    `json:"targets"`
	Panels     []panelJSON     `json:"panels"` // a collapsed row holds its panels
}

type targetJSON struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Instant    bool            `json:"instant"`
	Format     string          `json:"format"`
	Datasource *datasourceJSON `json:"datasource"`
}

type datasourceJSON struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variableJSON struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceJSON `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

func loadDashboard(path string) (*dashboardJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboardJSON
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode dashboard %s: %w", path, err)
	}
	return &d, nil
}

// DashboardQueries loads a Grafana dashboard JSON file and returns every
// panel target that carries an expression, in panel order, including the
// panels inside collapsed rows.
func DashboardQueries(path string) ([]Query, error) {
	d, err := loadDashboard(path)
	if err != nil {
		return nil, err
	}
	dsVars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			dsVars[v.Name] = unquoteQuery(v.Query)
		}
	}
	var out []Query
	var walk func(panels []panelJSON, rowRepeat string)
	walk = func(panels []panelJSON, rowRepeat string) {
		for _, p := range panels {
			if p.Type == "row" {
				// An expanded row owns the panels after it (up to the next
				// row); a collapsed one holds them inside.
				rowRepeat = p.Repeat
				walk(p.Panels, rowRepeat)
				continue
			}
			var repeat []string
			for _, r := range []string{rowRepeat, p.Repeat} {
				if r != "" {
					repeat = append(repeat, r)
				}
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					continue
				}
				ds := t.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				out = append(out, Query{
					Dashboard:      d.Title,
					Panel:          p.Title,
					PanelType:      p.Type,
					RefID:          t.RefID,
					DatasourceType: resolveDatasourceType(ds, dsVars),
					Expr:           t.Expr,
					Instant:        t.Instant,
					Format:         t.Format,
					Repeat:         repeat,
				})
			}
		}
	}
	walk(d.Panels, "")
	return out, nil
}

// DashboardVariables loads a Grafana dashboard JSON file and returns its
// templating variables.
func DashboardVariables(path string) ([]Variable, error) {
	d, err := loadDashboard(path)
	if err != nil {
		return nil, err
	}
	dsVars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			dsVars[v.Name] = unquoteQuery(v.Query)
		}
	}
	out := make([]Variable, 0, len(d.Templating.List))
	for _, v := range d.Templating.List {
		out = append(out, Variable{
			Name:           v.Name,
			Type:           v.Type,
			Query:          unquoteQuery(v.Query),
			DatasourceType: resolveDatasourceType(v.Datasource, dsVars),
			Multi:          v.Multi,
			IncludeAll:     v.IncludeAll,
			AllValue:       v.AllValue,
		})
	}
	return out, nil
}

// unquoteQuery reads a variable's query, which Grafana stores either as a
// string or as an object with a "query" field.
func unquoteQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Query
	}
	return ""
}

var datasourceVarRef = regexp.MustCompile(`^\$\{?(\w+)\}?$`)

func resolveDatasourceType(ds *datasourceJSON, dsVars map[string]string) string {
	if ds == nil {
		return ""
	}
	if ds.Type != "" {
		return ds.Type
	}
	if m := datasourceVarRef.FindStringSubmatch(ds.UID); m != nil {
		return dsVars[m[1]]
	}
	return ""
}

var labelValuesCall = regexp.MustCompile(`^\s*label_values\(\s*(?:(.*?)\s*,\s*)?(\w+)\s*\)\s*$`)

// ParseLabelValues splits a Grafana Prometheus variable query
// label_values(selector, label) or label_values(label) into its series
// selector (empty for the second form) and label name. Grafana answers the
// first form from /api/v1/label/<label>/values?match[]=<selector> (or
// /api/v1/series on old data sources) and the second from
// /api/v1/label/<label>/values.
func ParseLabelValues(query string) (selector, label string, err error) {
	m := labelValuesCall.FindStringSubmatch(query)
	if m == nil {
		return "", "", fmt.Errorf("not a label_values(...) query: %q", query)
	}
	return m[1], m[2], nil
}
