package pmetricwalk

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

func TestMetricsWalksEveryMetricWithItsProbe(t *testing.T) {
	md := pmetric.NewMetrics()
	for _, probe := range []string{"mnl-01", ""} {
		rm := md.ResourceMetrics().AppendEmpty()
		if probe != "" {
			rm.Resource().Attributes().PutStr("service.instance.id", probe)
		}
		for range 2 {
			ms := rm.ScopeMetrics().AppendEmpty().Metrics()
			ms.AppendEmpty().SetName(metricmodel.Latency)
			ms.AppendEmpty().SetName(metricmodel.Failures)
		}
	}
	var got []string
	for probe, m := range Metrics(md) {
		got = append(got, probe+"/"+m.Name())
	}
	want := []string{"mnl-01/" + metricmodel.Latency, "mnl-01/" + metricmodel.Failures, "mnl-01/" + metricmodel.Latency, "mnl-01/" + metricmodel.Failures,
		"/" + metricmodel.Latency, "/" + metricmodel.Failures, "/" + metricmodel.Latency, "/" + metricmodel.Failures}
	if len(got) != len(want) {
		t.Fatalf("walked %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walked %q, want %q", got, want)
		}
	}
	n := 0
	for range Metrics(md) {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("break after 3 walked %d", n)
	}
}
