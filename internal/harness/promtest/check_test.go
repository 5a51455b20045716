package promtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// CheckDashboards against a real Prometheus: variables resolve through the
// label-values API, repeated panels run once per value, and a selection
// without data is reported.
func TestCheckDashboards(t *testing.T) {
	p := StartPrometheus(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end := time.Now().Truncate(time.Second)
	var samples []Sample
	for i := range 41 {
		samples = append(samples, Sample{end.Add(time.Duration(i-40) * 15 * time.Second), 1})
	}
	err := RemoteWrite(ctx, p.RemoteWriteURL(), []Series{
		{Labels: map[string]string{"__name__": "up", "job": "a", "city": "Manila", "other": "x"}, Samples: samples},
		{Labels: map[string]string{"__name__": "up", "job": "a", "city": "Davao", "other": "y"}, Samples: samples},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := CheckOptions{
		Vars:  map[string][]string{"city": {AllValue}, "other": {"x", "y"}},
		Start: end.Add(-5 * time.Minute), End: end, Step: 30 * time.Second,
	}
	rep, err := CheckDashboards(ctx, p.URL, []string{"testdata/dashboard.json"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if probs := rep.Problems(); len(probs) > 0 {
		t.Errorf("problems: %v", probs)
	}
	if len(rep.Variables) != 1 || !slices.Equal(rep.Variables[0].Values, []string{"Davao", "Manila"}) {
		t.Errorf("variables = %+v", rep.Variables)
	}
	series := map[string]int{}
	for _, q := range rep.Queries {
		series[q.Query.Panel] = q.Series
	}
	// Repeated: four city x other combinations, two of which have a series.
	want := map[string]int{"Panel one": 2, "Repeated": 2, "Inside the row": 1}
	for panel, n := range want {
		if series[panel] != n {
			t.Errorf("%s: %d series, want %d (all: %v)", panel, series[panel], n, series)
		}
	}

	// A city without data is reported, with the query as sent.
	opts.Vars = map[string][]string{"city": {"Cebu"}, "other": {"x"}}
	rep, err = CheckDashboards(ctx, p.URL, []string{"testdata/dashboard.json"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	probs := strings.Join(rep.Problems(), "\n")
	if !strings.Contains(probs, "Panel one [A]: no data") || !strings.Contains(probs, `up{city=~"Cebu"}`) {
		t.Errorf("problems for Cebu:\n%s", probs)
	}
	if strings.Contains(probs, "Inside the row") {
		t.Errorf("sum(up) reported although it has data:\n%s", probs)
	}

	if _, err := CheckDashboards(ctx, p.URL, []string{"testdata/dashboard.json"}, CheckOptions{Start: end, End: end, Step: time.Second}); err == nil {
		t.Error("empty time range accepted")
	}
}
