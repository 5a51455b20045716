// Package pmetricwalk walks a collector pipeline's metrics with the probe id
// of each metric's resource. It is apart from metricmodel so that the probe,
// which imports the model, does not link the collector's pdata.
package pmetricwalk

import (
	"iter"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Metrics yields every metric of md with the service.instance.id of its
// resource (the probe id; "" when absent).
func Metrics(md pmetric.Metrics) iter.Seq2[string, pmetric.Metric] {
	return func(yield func(string, pmetric.Metric) bool) {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			rm := rms.At(i)
			instance := ""
			if v, ok := rm.Resource().Attributes().Get(metricmodel.ResourceProbeID); ok {
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
