package promtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// TestPrometheusClient starts a real Prometheus, feeds it through its
// remote-write receiver and reads everything back through each Client call.
func TestPrometheusClient(t *testing.T) {
	p := StartPrometheus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	end := time.Now().Truncate(time.Second)
	start := end.Add(-5 * time.Minute)
	var samples []Sample
	for i := range 21 { // every 15 s from start to end, counter +2 per step
		samples = append(samples, Sample{start.Add(time.Duration(i) * 15 * time.Second), float64(2 * i)})
	}
	series := []Series{
		{Labels: map[string]string{"__name__": "demo_total", "job": "t", "city": "Manila"}, Samples: samples},
		{Labels: map[string]string{"__name__": "demo_total", "job": "t", "city": "Cagayan de Oro"}, Samples: samples},
	}
	if err := RemoteWrite(ctx, p.RemoteWriteURL(), series); err != nil {
		t.Fatal(err)
	}
	c := p.Client()

	res, err := c.Query(ctx, `sum by (city) (demo_total)`, end)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	if len(vec) != 2 || vec[0].Value != 40 || vec[1].Value != 40 {
		t.Errorf("instant query = %v, want two series at 40", vec)
	}

	// rate over a window fully covered by samples: exactly 2 per 15 s.
	res, err = c.QueryRange(ctx, `rate(demo_total{city="Manila"}[1m])`, end.Add(-2*time.Minute), end, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mat, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	if len(mat) != 1 || len(mat[0].Values) != 5 {
		t.Fatalf("range query = %v, want one series with 5 points", mat)
	}
	for _, v := range mat[0].Values {
		if float64(v.Value) < 0.13 || float64(v.Value) > 0.14 {
			t.Errorf("rate at %v = %v, want 2/15", v.Timestamp, v.Value)
		}
	}

	if res, err = c.Query(ctx, `scalar(sum(demo_total))`, end); err != nil {
		t.Fatal(err)
	} else if s, ok := res.Value.(*model.Scalar); !ok || s.Value != 80 {
		t.Errorf("scalar query = %v, want 80", res.Value)
	}

	ls, err := c.Series(ctx, []string{`demo_total{city=~"C.*"}`}, start, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0]["city"] != "Cagayan de Oro" {
		t.Errorf("series = %v, want the Cagayan de Oro series", ls)
	}

	names, err := c.Labels(ctx, []string{`demo_total`}, start, end)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"__name__", "city", "job"}) {
		t.Errorf("labels = %v", names)
	}

	values, err := c.LabelValues(ctx, "city", []string{`demo_total{job="t"}`}, start, end)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(values, []string{"Cagayan de Oro", "Manila"}) {
		t.Errorf("label values = %v", values)
	}

	// A bad query is an APIError with Prometheus's error type.
	_, err = c.Query(ctx, `sum(`, end)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Type != "bad_data" || apiErr.StatusCode != 400 {
		t.Errorf("bad query error = %v, want bad_data APIError", err)
	}
}

// TestAlertmanagerWebhook starts a real Alertmanager, posts an alert, and
// sees the firing and then the resolved notification at the webhook.
func TestAlertmanagerWebhook(t *testing.T) {
	am := StartAlertmanager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	labels := map[string]string{"alertname": "BantayPathLatencySLOBreach", "src_city": "Manila", "dst_city": "Davao", "severity": "warning"}
	now := time.Now()
	if err := am.PostAlerts(ctx, []PostableAlert{{Labels: labels, Annotations: map[string]string{"summary": "slow"}, StartsAt: now}}); err != nil {
		t.Fatal(err)
	}
	a, err := am.Webhook.WaitFor(ctx, func(a WebhookAlert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == "BantayPathLatencySLOBreach"
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Labels["dst_city"] != "Davao" || a.Annotations["summary"] != "slow" {
		t.Errorf("firing notification = %+v", a)
	}
	listed, err := am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Labels["src_city"] != "Manila" || listed[0].Status.State != "active" {
		t.Errorf("listed alerts = %+v", listed)
	}

	// Resolving: the same labels with an end time in the past.
	if err := am.PostAlerts(ctx, []PostableAlert{{Labels: labels, StartsAt: now, EndsAt: time.Now().Add(-time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := am.Webhook.WaitFor(ctx, func(a WebhookAlert) bool {
		return a.Status == "resolved" && a.Labels["alertname"] == "BantayPathLatencySLOBreach"
	}); err != nil {
		t.Fatal(err)
	}

	// Bad input is refused with a clear error.
	if err := am.PostAlerts(ctx, []PostableAlert{{Labels: map[string]string{}}}); err == nil {
		t.Error("alert without labels accepted")
	}
}
