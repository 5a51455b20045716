package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// TestQueryAndRestartFlagsValidated: bad flags are refused with their
// names before anything is built or written.
func TestQueryAndRestartFlagsValidated(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"query"}, "-dir is required"},
		{[]string{"query", "-dir", dir, "-span", "30m"}, "-span"},
		{[]string{"query", "-dir", dir, "-span", "400h"}, "-span"},
		{[]string{"query", "-dir", dir, "-reps", "0"}, "-reps"},
		{[]string{"query", "-dir", dir, "-interval", "10ms"}, "-interval"},
		{[]string{"query", "-dir", dir, "-bantay-blocks", "6h"}, "-bantay-blocks"},
		{[]string{"query", "-dir", dir, "-ranges", "1h,30d"}, `-ranges: "30d"`},
		{[]string{"query", "-dir", dir, "-uplinks", "0"}, "-uplinks"},
		{[]string{"restart"}, "-dir is required"},
		{[]string{"restart", "-dir", dir, "-load", "5s"}, "-load"},
		{[]string{"restart", "-dir", dir, "-probes", "0"}, "-probes"},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %q", tc.args, err, tc.want)
		}
	}
}

// TestQueryAgainstPrometheus runs the whole query benchmark on a small
// history: the label sets come from the real collector, both sides open the
// blocks, and every expression is answered by both with the same number of
// series; a second run reuses the history.
func TestQueryAgainstPrometheus(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary and Prometheus")
	prom := testenv.Binary(t, "prometheus", "PROMETHEUS")
	dir := t.TempDir()
	out := filepath.Join(dir, "query.json")
	args := []string{"query", "-probes", "1", "-targets", "2", "-uplinks", "1", "-span", "3h", "-reps", "1",
		"-ranges", "1h", "-prometheus", prom, "-dir", dir, "-json", out}
	var stderr bytes.Buffer
	if err := run(context.Background(), args, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res queryResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	// 2 targets × 38 series from the pipeline + 4 round counters each, and the uplink's target_info.
	if h := res.History; h.Series != 2*42+1 || h.Blocks2h < 2 || h.Samples == 0 {
		t.Fatalf("history %+v, want 85 series in at least 2 blocks", h)
	}
	withData := 0
	for _, m := range res.Queries {
		if len(m.Errors) > 0 || len(m.BantayS) != 1 || len(m.PrometheusS) != 1 {
			t.Errorf("%s: errors %v, times %v / %v", m.Source, m.Errors, m.BantayS, m.PrometheusS)
		}
		if m.BantaySeries != m.PrometheusSeries {
			t.Errorf("%s: %d series from Bantay, %d from Prometheus", m.Source, m.BantaySeries, m.PrometheusSeries)
		}
		if m.BantaySeries > 0 {
			withData++
		}
	}
	if len(res.Queries) < 50 || withData < 20 {
		t.Errorf("%d expressions, %d with data; want every dashboard and rule expression, most of the dashboards' with data", len(res.Queries), withData)
	}
	if res.ColdStart.Bantay.FirstQueryS <= 0 || res.ColdStart.Prometheus.FirstQueryS <= 0 {
		t.Errorf("cold start %+v", res.ColdStart)
	}
	stderr.Reset()
	if err := run(context.Background(), args, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "reusing the history") {
		t.Errorf("the second run wrote the history again:\n%s", stderr.String())
	}
}
