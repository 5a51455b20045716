package promtest

import (
	"reflect"
	"testing"
)

func TestDashboardQueries(t *testing.T) {
	got, err := DashboardQueries("testdata/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []Query{
		{Dashboard: "Test dashboard", Panel: "Panel one", PanelType: "timeseries", RefID: "A", DatasourceType: "prometheus", Expr: `up{city=~"$city"}`},
		{Dashboard: "Test dashboard", Panel: "Repeated", PanelType: "timeseries", RefID: "A", DatasourceType: "prometheus", Expr: `up{city=~"$city", other=~"$other"}`, Repeat: []string{"city", "other"}},
		{Dashboard: "Test dashboard", Panel: "Inside the row", PanelType: "table", RefID: "A", DatasourceType: "prometheus", Expr: `sum(up)`, Instant: true, Format: "table"},
		{Dashboard: "Test dashboard", Panel: "Logs", PanelType: "logs", RefID: "A", DatasourceType: "loki", Expr: `{service="bantay"}`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DashboardQueries =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDashboardVariables(t *testing.T) {
	got, err := DashboardVariables("testdata/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d variables, want 3: %+v", len(got), got)
	}
	want := Variable{Name: "city", Type: "query", Query: `label_values(up{job="a"}, city)`, DatasourceType: "prometheus", Multi: true, IncludeAll: true, AllValue: ".*"}
	if got[2] != want {
		t.Errorf("variable city = %+v, want %+v", got[2], want)
	}
}

func TestDashboardQueriesErrors(t *testing.T) {
	if _, err := DashboardQueries("testdata/missing.json"); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := DashboardQueries("expand.go"); err == nil {
		t.Error("not JSON: no error")
	}
}
