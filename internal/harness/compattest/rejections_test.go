package compattest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// testRejections: the points sendUnregisteredProbe posts are rejected by
// citytag (each request answered HTTP 400 naming why), counted by reason on the collector's own telemetry, scraped into
// the store (job="bantay-collector"), and read by the shipped
// BantayCollectorRejectingPoints rule, which goes pending (its for: is
// 10 minutes, longer than the test). The differential step has already
// compared the counter with Prometheus, and the dashboards step has found
// the collector-health panel built on it non-empty.
func (e *env) testRejections(t *testing.T, ctx context.Context) {
	const sel = `bantay_citytag_rejected_points{job="bantay-collector", reason="unknown_probe"}`
	waitFor(t, ctx, 30*time.Second, "rejections of the unregistered probe counted and rising", func() (bool, string) {
		res, err := e.bantay.Query(ctx, `increase(`+sel+`[30s])`, time.Time{})
		if err != nil {
			return false, err.Error()
		}
		v, err := res.Vector()
		if err != nil || len(v) != 1 || v[0].Value <= 0 {
			return false, Summary(res)
		}
		return true, ""
	})
	want := map[string]string{
		"alertname": "BantayCollectorRejectingPoints",
		"severity":  "warning",
		"job":       "bantay-collector",
		"reason":    "unknown_probe",
	}
	waitFor(t, ctx, 45*time.Second, "BantayCollectorRejectingPoints pending on Bantay", func() (bool, string) {
		alerts, err := Alerts(ctx, e.bantayURL)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range alerts {
			if hasLabels(a.Labels, want) {
				if a.State != "pending" {
					return false, "state " + a.State
				}
				if a.Annotations["runbook_url"] == "" || a.Annotations["summary"] == "" {
					return false, fmt.Sprintf("annotations %v", a.Annotations)
				}
				return true, ""
			}
		}
		return false, fmt.Sprintf("not among %d alerts", len(alerts))
	})
}
