package metricmodel

import (
	"testing"

	"github.com/bantay-noc/bantay/probes/agent"
	"go.opentelemetry.io/collector/pdata/pmetric"
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
			ms.AppendEmpty().SetName(Latency)
			ms.AppendEmpty().SetName(Failures)
		}
	}
	var got []string
	for probe, m := range Metrics(md) {
		got = append(got, probe+"/"+m.Name())
	}
	want := []string{"mnl-01/" + Latency, "mnl-01/" + Failures, "mnl-01/" + Latency, "mnl-01/" + Failures,
		"/" + Latency, "/" + Failures, "/" + Latency, "/" + Failures}
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

// The probe names its metrics itself (it does not link the collector's
// pdata); both sides of the contract must agree.
func TestProbeRecordsTheseNames(t *testing.T) {
	for got, want := range map[string]string{agent.MetricLatency: Latency, agent.MetricAttempts: Attempts, agent.MetricFailures: Failures} {
		if got != want {
			t.Errorf("the probe records %q, the collector looks for %q", got, want)
		}
	}
}
