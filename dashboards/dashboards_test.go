package dashboards

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) < 5 {
		t.Fatalf("want the five dashboards in grafana/, found %v (%v)", files, err)
	}
	return files
}

// The dashboards are valid Grafana dashboards as far as the Grafana
// Foundation SDK's types know them: strict decoding rejects unknown fields,
// wrong types and missing required fields.
func TestDashboardsMatchFoundationSDKTypes(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, f := range dashboardFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard.Dashboard
		if err := strictErr(d.UnmarshalJSONStrict(raw)); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.Uid == nil || !strings.HasPrefix(*d.Uid, "bantay-") {
			t.Errorf("%s: uid %v, want bantay-…", f, d.Uid)
		}
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", f)
		}
	}
}

// strictErr reads the SDK's strict-decoding result: it returns an empty
// cog.BuildErrors (a non-nil error interface) on success.
func strictErr(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}

// No data source is ever named by a fixed uid: every panel and query uses a
// data-source variable, so the dashboards work against whatever Prometheus-
// compatible store the operator selects.
func TestDashboardsUseDatasourceVariables(t *testing.T) {
	varRef := regexp.MustCompile(`^\$\{?(datasource|loki)\}?$`)
	for _, f := range dashboardFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		var walk func(v any, path string)
		walk = func(v any, path string) {
			switch v := v.(type) {
			case map[string]any:
				if ds, ok := v["datasource"].(map[string]any); ok {
					if uid, _ := ds["uid"].(string); !varRef.MatchString(uid) {
						t.Errorf("%s: %s.datasource.uid = %q, want a data-source variable", f, path, uid)
					}
				}
				for k, c := range v {
					walk(c, path+"."+k)
				}
			case []any:
				for _, c := range v {
					walk(c, path+"[]")
				}
			}
		}
		walk(doc, "")
	}
}

// Every path dashboard offers the four path variables and a Prometheus
// data-source variable; dashboards with a logs panel also a Loki one.
func TestDashboardVariables(t *testing.T) {
	for _, f := range dashboardFiles(t) {
		vars, err := promtest.DashboardVariables(f)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]promtest.Variable{}
		for _, v := range vars {
			byName[v.Name] = v
		}
		if v := byName["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
			t.Errorf("%s: datasource variable = %+v", f, v)
		}
		qs, err := promtest.DashboardQueries(f)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(qs, func(q promtest.Query) bool { return q.DatasourceType == "loki" }) {
			if v := byName["loki"]; v.Type != "datasource" || v.Query != "loki" {
				t.Errorf("%s: has a Loki panel but no loki data-source variable (%+v)", f, v)
			}
		}
		want := []string{"src_city", "dst_city", "carrier", "network_type"}
		if filepath.Base(f) == "collector-health.json" {
			want = []string{"instance"}
		}
		for _, name := range want {
			v, ok := byName[name]
			if !ok {
				t.Errorf("%s: no %s variable", f, name)
				continue
			}
			if _, label, err := promtest.ParseLabelValues(v.Query); err != nil || label != name {
				t.Errorf("%s: variable %s query %q is not label_values(…, %s)", f, name, v.Query, name)
			}
			if v.IncludeAll && v.AllValue != ".*" {
				t.Errorf("%s: variable %s allValue %q, want .*", f, name, v.AllValue)
			}
		}
	}
}

// variableChoices are selections an operator can make; each must give
// valid PromQL after Grafana's expansion.
var variableChoices = []map[string][]string{
	{"src_city": {promtest.AllValue}, "dst_city": {promtest.AllValue}, "carrier": {promtest.AllValue}, "network_type": {promtest.AllValue}, "instance": {promtest.AllValue}},
	{"src_city": {"Manila"}, "dst_city": {"Davao"}, "carrier": {"Globe"}, "network_type": {"5g"}, "instance": {"127.0.0.1:8888"}},
	{"src_city": {"Manila", "Cagayan de Oro"}, "dst_city": {"Davao", "Cebu"}, "carrier": {"Globe", "Smart"}, "network_type": {"4g", "5g"}, "instance": {"a:1", "b:2"}},
	// Values with characters that need escaping still give valid PromQL.
	{"src_city": {`O'Brien`}, "dst_city": {`a\b`}, "carrier": {"AT&T (US)", "x.y"}, "network_type": {"4g|5g"}, "instance": {"[::1]:8888"}},
}

// Every Prometheus query of every dashboard parses as PromQL (with the
// parser of the Prometheus version Bantay embeds) after the variables are
// expanded the way Grafana expands them, for several selections and time
// ranges; so do the selectors of the label_values() variables.
func TestDashboardQueriesParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	ranges := []struct{ step, rng time.Duration }{{15 * time.Second, time.Hour}, {5 * time.Minute, 7 * 24 * time.Hour}}
	n := 0
	for _, f := range dashboardFiles(t) {
		qs, err := promtest.DashboardQueries(f)
		if err != nil {
			t.Fatal(err)
		}
		vars, err := promtest.DashboardVariables(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, choice := range variableChoices {
			for _, r := range ranges {
				all := promtest.BuiltinVars(r.step, r.rng, 15*time.Second)
				for k, v := range choice {
					all[k] = v
				}
				for _, q := range qs {
					// Both with the variables' definitions (exactly as
					// Grafana) and without (every value list as given).
					for _, expanded := range []string{
						promtest.ExpandDashboardVars(q.Expr, all, vars),
						promtest.ExpandGrafanaVars(q.Expr, all),
					} {
						if strings.Contains(expanded, "$") && !strings.Contains(q.Expr, `"$1"`) {
							t.Errorf("%s / %s: unexpanded variable in %s", f, q.Panel, expanded)
						}
						if q.DatasourceType != "prometheus" {
							continue
						}
						n++
						if _, err := p.ParseExpr(expanded); err != nil {
							t.Errorf("%s / %s [%s]: %v\n    %s", f, q.Panel, q.RefID, err, expanded)
						}
					}
				}
				for _, v := range vars {
					if v.Type != "query" {
						continue
					}
					sel, _, err := promtest.ParseLabelValues(v.Query)
					if err != nil {
						t.Errorf("%s: variable %s: %v", f, v.Name, err)
						continue
					}
					if _, err := p.ParseMetricSelector(promtest.ExpandDashboardVars(sel, all, vars)); err != nil {
						t.Errorf("%s: variable %s selector: %v", f, v.Name, err)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no Prometheus queries found")
	}
}

// The panel kinds the issue asks for are there.
func TestDashboardPanels(t *testing.T) {
	want := map[string][]string{
		"latency-heatmap.json":    {"heatmap", "logs"},
		"city-matrix.json":        {"table"},
		"carrier-comparison.json": {"table", "timeseries"},
		"probe-health.json":       {"stat", "state-timeline", "table", "timeseries", "logs"},
		"collector-health.json":   {"timeseries", "logs"},
	}
	for name, types := range want {
		qs, err := promtest.DashboardQueries(filepath.Join("grafana", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range types {
			if !slices.ContainsFunc(qs, func(q promtest.Query) bool { return q.PanelType == typ }) {
				t.Errorf("%s: no %s panel with a query", name, typ)
			}
		}
	}
	// Heatmaps read the histogram buckets in Grafana's heatmap format.
	qs, _ := promtest.DashboardQueries("grafana/latency-heatmap.json")
	for _, q := range qs {
		if q.PanelType == "heatmap" && (q.Format != "heatmap" || !strings.Contains(q.Expr, "network_latency_milliseconds_bucket") || !strings.Contains(q.Expr, "by (le)")) {
			t.Errorf("heatmap %s: format %q, query %s", q.Panel, q.Format, q.Expr)
		}
	}
}

// The provisioning files are what Grafana reads: a Prometheus and a Loki
// data source, and a file provider for the dashboards.
func TestProvisioningFiles(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, URL, Access string
			JSONData                     map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "provisioning/datasources/bantay.yaml", &ds)
	types := map[string]bool{}
	for _, d := range ds.Datasources {
		types[d.Type] = true
		if d.Name == "" || d.URL == "" || d.Access != "proxy" {
			t.Errorf("data source %+v: need name, url, access: proxy", d)
		}
	}
	if ds.APIVersion != 1 || !types["prometheus"] || !types["loki"] {
		t.Errorf("datasources: apiVersion %d, types %v", ds.APIVersion, types)
	}

	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "provisioning/dashboards/bantay.yaml", &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provider = %+v", dp)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Against a real Prometheus fed with demo data through remote write, every
// dashboard query and every variable returns data through the API calls
// Grafana makes. The same check runs against Bantay once a demo-fed
// collector is available (promtest.CheckDashboards takes any API base URL).
func TestDashboardsReturnDataFromPrometheus(t *testing.T) {
	prom := promtest.StartPrometheus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	end := time.Now().Truncate(time.Second)
	if err := promtest.RemoteWrite(ctx, prom.RemoteWriteURL(), promtest.DemoSeries(end, 120)); err != nil {
		t.Fatal(err)
	}
	choices := []map[string][]string{
		variableChoices[0],
		{"src_city": {"Manila"}, "dst_city": {"Davao"}, "carrier": {"Globe"}, "network_type": {"5g"}, "instance": {promtest.DemoCollectorInstance}},
		{"src_city": {"Manila", "Davao"}, "dst_city": {"Cebu", "Manila"}, "carrier": {"Smart"}, "network_type": {"4g"}, "instance": {promtest.AllValue}},
	}
	for _, vars := range choices {
		rep, err := promtest.CheckDashboards(ctx, prom.URL, dashboardFiles(t), promtest.CheckOptions{
			Vars:  vars,
			Start: end.Add(-20 * time.Minute),
			End:   end,
			Step:  30 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Queries) < 20 || len(rep.Variables) < 10 {
			t.Errorf("only %d queries and %d variables checked", len(rep.Queries), len(rep.Variables))
		}
		for _, p := range rep.Problems() {
			t.Errorf("vars %v: %s", vars, p)
		}
	}
}

// Loki queries select streams only by the labels the events exporter sets
// (docs/loki.md): anything else would match no stream.
func TestLokiQueriesUseEventLabels(t *testing.T) {
	allowed := map[string]bool{"service": true, "kind": true, "src_city": true, "carrier": true, "island_group": true}
	selector := regexp.MustCompile(`^\{([^}]*)\}`)
	matcher := regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"`)
	n := 0
	for _, f := range dashboardFiles(t) {
		qs, err := promtest.DashboardQueries(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if q.DatasourceType != "loki" {
				continue
			}
			n++
			m := selector.FindStringSubmatch(q.Expr)
			if m == nil {
				t.Errorf("%s / %s: %q does not start with a stream selector", f, q.Panel, q.Expr)
				continue
			}
			if !strings.Contains(m[1], `service="bantay"`) {
				t.Errorf("%s / %s: %q does not select service=\"bantay\"", f, q.Panel, q.Expr)
			}
			for _, lm := range matcher.FindAllStringSubmatch(m[1], -1) {
				if !allowed[lm[1]] {
					t.Errorf("%s / %s: label %s is not an events label", f, q.Panel, lm[1])
				}
			}
		}
	}
	if n == 0 {
		t.Error("no Loki queries found")
	}
}
