package compattest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// The incident of the alerting scenario: Manila → Davao over Globe 5G goes
// from ~33 ms to 300 ms round trip, three times the 100 ms inter-island
// threshold, while every other path stays as it was.
const (
	spikeUplink = "mnl-01/globe-5g"
	spikeCity   = "Davao"
	spikeRTT    = 300 * time.Millisecond
	alertName   = "BantayPathLatencySLOBreach"
	fastGroup   = "bantay-path-alerts-fast"
)

// wantAlertLabels are the labels Alertmanager must receive: the path, the
// route class and threshold the shipped recording rules assign it, the
// severity of the shipped rule.
var wantAlertLabels = map[string]string{
	"alertname":        alertName,
	"src_city":         "Manila",
	"dst_city":         "Davao",
	"carrier":          "Globe",
	"network_type":     "5g",
	"island_group":     "Luzon",
	"dst_island_group": "Mindanao",
	"route_class":      "inter_island",
	"threshold_ms":     "100",
	"severity":         "warning",
}

func hasLabels(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// firingOnBantay returns the firing alert for the spiked path from Bantay's
// /api/v1/alerts, if there is one. The shipped rule of the same name goes
// pending for the same path during the spike (its 5m window sees it too)
// but never fires within the test: only state "firing" counts.
func firingOnBantay(ctx context.Context, baseURL string) (Alert, bool, error) {
	alerts, err := Alerts(ctx, baseURL)
	if err != nil {
		return Alert{}, false, err
	}
	for _, a := range alerts {
		if a.State == "firing" && hasLabels(a.Labels, wantAlertLabels) {
			return a, true, nil
		}
	}
	return Alert{}, false, nil
}

func (e *env) testAlerting(t *testing.T, ctx context.Context) {
	u := demoUplink(t, spikeUplink)
	normal, err := netsim.DemoProfile(u, spikeCity)
	if err != nil {
		t.Fatal(err)
	}
	table := e.tables[spikeCity]
	// Whatever happens below, the path is healthy again afterwards.
	t.Cleanup(func() { _ = table.Set(u.Addr, normal) })

	// The path must be healthy before the spike, or a firing alert would
	// prove nothing (a loaded machine can push its p95 up for a moment).
	waitFor(t, ctx, 30*time.Second, "the path to be healthy before the spike", func() (bool, string) {
		a, firing, err := firingOnBantay(ctx, e.bantayURL)
		if err != nil {
			return false, err.Error()
		}
		return !firing, "already firing: " + a.Value
	})

	spiked := normal
	spiked.Base = spikeRTT
	spikeAt := time.Now()
	if err := table.Set(u.Addr, spiked); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s → %s: %v, was %v", spikeUplink, spikeCity, spiked, normal)

	// Firing, at Alertmanager's webhook, with the route's labels. The rule
	// needs a few probe rounds in its 15 s window and 6 s of "for";
	// Alertmanager sends without group_wait.
	fireCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	fired, err := e.am.Webhook.WaitFor(fireCtx, func(a promtest.WebhookAlert) bool {
		return a.Status == "firing" && hasLabels(a.Labels, wantAlertLabels) && !a.StartsAt.Before(spikeAt.Add(-time.Second))
	})
	if err != nil {
		t.Fatalf("no firing %s for Manila → Davao at the webhook: %v; received: %+v", alertName, err, e.am.Webhook.Messages())
	}
	t.Logf("firing after %v: labels %v", time.Since(spikeAt).Round(time.Millisecond), fired.Labels)
	for _, name := range []string{"summary", "description", "runbook_url"} {
		if fired.Annotations[name] == "" {
			t.Errorf("firing alert without %s: %v", name, fired.Annotations)
		}
	}
	if s := fired.Annotations["summary"]; !strings.Contains(s, "Manila → Davao on Globe 5g") || !strings.Contains(s, "100 ms") {
		t.Errorf("summary %q does not name the path and its threshold", s)
	}
	if !strings.HasSuffix(fired.Annotations["runbook_url"], "docs/RUNBOOK.md#bantaypathlatencyslobreach") {
		t.Errorf("runbook_url %q", fired.Annotations["runbook_url"])
	}

	// Bantay shows the rule and the alert through the API Grafana and
	// amtool-style tooling read.
	groups, err := Rules(ctx, e.bantayURL)
	if err != nil {
		t.Fatal(err)
	}
	rule, ok := FindRule(groups, fastGroup, alertName)
	if !ok || rule.Type != "alerting" || rule.Health != "ok" || rule.Labels["severity"] != "warning" {
		t.Errorf("/api/v1/rules: test rule %+v (found %v)", rule, ok)
	}
	if shipped, ok := FindRule(groups, "bantay-path-alerts", alertName); !ok || shipped.Duration != 300 {
		t.Errorf("/api/v1/rules: shipped rule %+v (found %v), want for: 5m", shipped, ok)
	}
	a, firing, err := firingOnBantay(ctx, e.bantayURL)
	if err != nil || !firing {
		t.Errorf("/api/v1/alerts: no firing alert for the path (err %v)", err)
	} else {
		t.Logf("/api/v1/alerts: firing since %v, p95 %s ms", a.ActiveAt, a.Value)
	}
	amAlerts, err := e.am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inAM := false
	for _, a := range amAlerts {
		inAM = inAM || (hasLabels(a.Labels, wantAlertLabels) && a.Status.State == "active")
	}
	if !inAM {
		t.Errorf("Alertmanager's /api/v2/alerts does not list the alert as active: %+v", amAlerts)
	}

	// Recovery: back to the normal profile; once the 15 s window holds no
	// spiked probe the alert resolves and Alertmanager says so.
	if err := table.Set(u.Addr, normal); err != nil {
		t.Fatal(err)
	}
	restoreAt := time.Now()
	resolveCtx, cancel2 := context.WithTimeout(ctx, 90*time.Second)
	defer cancel2()
	// The same alert (fingerprint) ending after the restore: on a loaded
	// machine the path may have fired and resolved once before the spike,
	// and that older resolve is in the webhook's history too.
	resolved, err := e.am.Webhook.WaitFor(resolveCtx, func(a promtest.WebhookAlert) bool {
		return a.Status == "resolved" && a.Fingerprint == fired.Fingerprint && !a.EndsAt.Before(restoreAt.Add(-time.Second))
	})
	if err != nil {
		t.Fatalf("no resolved notification after recovery: %v; received: %+v", err, e.am.Webhook.Messages())
	}
	if !hasLabels(resolved.Labels, wantAlertLabels) {
		t.Errorf("resolved alert labels %v", resolved.Labels)
	}
	t.Logf("resolved %v after recovery", time.Since(restoreAt).Round(time.Millisecond))
	if _, firing, err := firingOnBantay(ctx, e.bantayURL); err != nil || firing {
		t.Errorf("/api/v1/alerts still lists the alert as firing after the resolve (err %v)", err)
	}
}

// reloadedRules replaces the test alert group with a recording rule: the
// reload must drop the one and load the other.
const reloadedRules = `groups:
  - name: bantay-reload-check
    interval: 5s
    rules:
      - record: bantay:compattest_reload:marker
        expr: vector(1)
`

func (e *env) testReload(t *testing.T, ctx context.Context) {
	before, err := Rules(ctx, e.bantayURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := FindRule(before, fastGroup, alertName); !ok {
		t.Fatalf("test rule not loaded before the reload: %+v", before)
	}
	if err := os.WriteFile(e.ruleFile, []byte(reloadedRules), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Reload(ctx, e.bantayURL); err != nil {
		t.Fatal(err)
	}
	after, err := Rules(ctx, e.bantayURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := FindRule(after, fastGroup, alertName); ok {
		t.Error("the replaced group is still loaded after the reload")
	}
	if r, ok := FindRule(after, "bantay-reload-check", "bantay:compattest_reload:marker"); !ok || r.Type != "recording" {
		t.Errorf("new recording rule not loaded: %+v (found %v)", r, ok)
	}
	if _, ok := FindRule(after, "bantay-paths", "path:network_latency_milliseconds:p95_rate5m"); !ok {
		t.Error("the shipped recording rules are gone after the reload")
	}

	// A broken file is refused with an error, and the rules in force stay.
	if err := os.WriteFile(e.ruleFile, []byte("groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: rate(\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Reload(ctx, e.bantayURL); err == nil {
		t.Error("reload of a broken rule file succeeded")
	} else if !strings.Contains(err.Error(), filepath.Base(e.ruleFile)) {
		t.Errorf("the reload error does not name the broken rule file %s: %v", filepath.Base(e.ruleFile), err)
	} else {
		t.Logf("broken rule file refused: %v", err)
	}
	kept, err := Rules(ctx, e.bantayURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := FindRule(kept, "bantay-reload-check", "bantay:compattest_reload:marker"); !ok {
		t.Error("a failed reload dropped the rules in force")
	}
}

// sighupRules replaces whatever the reload step left in the test rule file.
const sighupRules = `groups:
  - name: bantay-sighup-check
    interval: 2s
    rules:
      - record: bantay:compattest_sighup:marker
        expr: vector(1)
`

// testSIGHUP reloads the rule files the other way Prometheus offers:
// SIGHUP to the process (here the test binary, which runs the collector).
// The new group must be served by /api/v1/rules and its output stored, the
// shipped rules must stay, and every demo path must still get new samples
// afterwards. (The collector also re-reads its own configuration on
// SIGHUP; docs/compatibility.md says what that means.)
func (e *env) testSIGHUP(t *testing.T, ctx context.Context) {
	if err := os.WriteFile(e.ruleFile, []byte(sighupRules), 0o600); err != nil {
		t.Fatal(err)
	}
	hupAt := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 60*time.Second, "the rule file reloaded on SIGHUP", func() (bool, string) {
		groups, err := Rules(ctx, e.bantayURL)
		if err != nil {
			return false, err.Error() // the collector may be restarting
		}
		if _, ok := FindRule(groups, "bantay-sighup-check", "bantay:compattest_sighup:marker"); !ok {
			return false, "new group not loaded"
		}
		if _, ok := FindRule(groups, "bantay-reload-check", "bantay:compattest_reload:marker"); ok {
			return false, "replaced group still loaded"
		}
		if _, ok := FindRule(groups, "bantay-paths", "path:network_latency_milliseconds:p95_rate5m"); !ok {
			return false, "the shipped recording rules are gone"
		}
		return true, ""
	})
	t.Logf("rules reloaded %v after SIGHUP", time.Since(hupAt).Round(time.Millisecond))

	paths := len(netsim.DemoUplinks()) * len(netsim.DemoCities()) * 2
	after := float64(hupAt.UnixMilli()) / 1000
	waitFor(t, ctx, 60*time.Second, "new samples on every path and the new rule's output stored after SIGHUP", func() (bool, string) {
		res, err := e.bantay.Query(ctx, fmt.Sprintf(`count(timestamp(network_latency_milliseconds_count{phase=""}) > %f)`, after), time.Time{})
		if err != nil {
			return false, err.Error()
		}
		v, err := res.Vector()
		if err != nil || len(v) != 1 || int(v[0].Value) != paths {
			return false, fmt.Sprintf("paths with samples after SIGHUP: %s, want %d", Summary(res), paths)
		}
		res, err = e.bantay.Query(ctx, `bantay:compattest_sighup:marker`, time.Time{})
		if err != nil {
			return false, err.Error()
		}
		return res.Len() == 1, "marker: " + Summary(res)
	})
}
