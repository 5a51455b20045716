// Package metricmodel is the probe side of the metric contract in
// docs/metric-model.md: the OTel names the probes record, which the
// collector's components (citytag, the heatmap exporter, the failure_events
// connector) look for, and the one way they walk a pipeline's metrics.
package metricmodel

import (
	"iter"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// The OTel metric names a probe records.
const (
	Latency     = "network.latency"           // histogram, ms, answered probes (and http phases)
	Attempts    = "bantay.probe.attempts"     // counter, every probe
	Failures    = "bantay.probe.failures"     // counter by reason
	Jitter      = "bantay.probe.jitter"       // counter, ms: Σ|ΔRTT| of consecutive answers of a round
	JitterPairs = "bantay.probe.jitter.pairs" // counter: the pairs summed in Jitter
)

// AttrPhase is the attribute of an http phase's latency point. The total
// has none, so a consumer of path latency skips every point that has one.
const AttrPhase = "phase"

// Metrics yields every metric of md with the service.instance.id of its
// resource (the probe id; "" when absent).
func Metrics(md pmetric.Metrics) iter.Seq2[string, pmetric.Metric] {
	return func(yield func(string, pmetric.Metric) bool) {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			rm := rms.At(i)
			instance := ""
			if v, ok := rm.Resource().Attributes().Get("service.instance.id"); ok {
				instance = v.AsString()
			}
			sms := rm.ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					if !yield(instance, ms.At(k)) {
						return
					}
				}
			}
		}
	}
}
