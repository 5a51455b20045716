package dashboards

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

var ruleFiles = []string{"rules/bantay-recording.yml", "rules/bantay-alerts.yml"}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin := testenv.Binary(t, "promtool", "PROMTOOL")
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

// promtool (Debian's Prometheus 2.42) accepts the rule files…
func TestPromtoolCheckRules(t *testing.T) {
	promtool(t, append([]string{"check", "rules"}, ruleFiles...)...)
}

// …and every unit test in rules/tests passes.
func TestPromtoolTestRules(t *testing.T) {
	tests, err := filepath.Glob("rules/tests/*.yml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no promtool tests found (%v)", err)
	}
	promtool(t, append([]string{"test", "rules"}, tests...)...)
}

// The rule files must also load in the Prometheus version Bantay embeds
// (v0.316): the collector evaluates them with that rules engine.
func parseRules(t *testing.T) []rulefmt.RuleGroup {
	t.Helper()
	var groups []rulefmt.RuleGroup
	p := parser.NewParser(parser.Options{})
	for _, f := range ruleFiles {
		rgs, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		for _, err := range errs {
			t.Errorf("%s: %v", f, err)
		}
		if rgs != nil {
			groups = append(groups, rgs.Groups...)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return groups
}

func TestRulesLoadInEmbeddedPrometheus(t *testing.T) {
	groups := parseRules(t)
	n := 0
	for _, g := range groups {
		n += len(g.Rules)
	}
	if n < 20 {
		t.Errorf("only %d rules parsed", n)
	}
}

// The embedded copies are the files on disk.
func TestRuleFilesEmbedded(t *testing.T) {
	for _, name := range RuleFileNames {
		embedded, err := RuleFiles.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		onDisk, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if string(embedded) != string(onDisk) {
			t.Errorf("%s: embedded copy differs", name)
		}
	}
}

var runbookAnchor = regexp.MustCompile(`^https://github\.com/bantay-noc/bantay/blob/main/docs/RUNBOOK\.md#([a-z0-9-]+)$`)

// githubAnchors returns the anchors GitHub generates for the Markdown
// headings of a file: lower case, punctuation dropped, spaces to hyphens.
func githubAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		h = drop.ReplaceAllString(strings.ToLower(h), "")
		anchors[strings.ReplaceAll(h, " ", "-")] = true
	}
	return anchors
}

// Every alert says how bad it is, what happened, and where its runbook
// section is — and that section exists.
func TestAlertsAreDocumented(t *testing.T) {
	anchors := githubAnchors(t, "../docs/RUNBOOK.md")
	for _, g := range parseRules(t) {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			m := runbookAnchor.FindStringSubmatch(r.Annotations["runbook_url"])
			if m == nil {
				t.Errorf("%s: runbook_url %q does not point into docs/RUNBOOK.md", r.Alert, r.Annotations["runbook_url"])
				continue
			}
			if m[1] != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook anchor #%s is not the alert's own section", r.Alert, m[1])
			}
			if !anchors[m[1]] {
				t.Errorf("%s: docs/RUNBOOK.md has no heading for #%s", r.Alert, m[1])
			}
		}
	}
}

// Every alert is exercised by an alert_rule_test and every recorded series by
// a promql_expr_test in rules/tests.
func TestEveryRuleIsUnitTested(t *testing.T) {
	tests, err := filepath.Glob("rules/tests/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range tests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	text := all.String()
	for _, g := range parseRules(t) {
		for _, r := range g.Rules {
			switch {
			case r.Alert != "":
				if !strings.Contains(text, "alertname: "+r.Alert+"\n") {
					t.Errorf("alert %s has no alert_rule_test", r.Alert)
				}
			case !regexp.MustCompile(`(?m)^\s+- expr: .*` + regexp.QuoteMeta(r.Record) + `\b`).MatchString(text):
				t.Errorf("recording rule %s has no promql_expr_test", r.Record)
			}
		}
	}
}

// The latency thresholds double as histogram bucket bounds (the burn-rate
// SLI counts the bucket le=<threshold>): each threshold series must carry an
// le label equal to its value, and that value must be one of the bounds the
// probes use.
func TestLatencyThresholdsAreBucketBounds(t *testing.T) {
	bounds := map[string]bool{}
	for _, b := range promtest.LatencyBucketBounds {
		bounds[strconv.FormatFloat(b, 'f', -1, 64)] = true
	}
	// The bounds in promtest must be the contract's.
	doc, err := os.ReadFile("../docs/metric-model.md")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, b := range promtest.LatencyBucketBounds {
		want = append(want, strconv.FormatFloat(b, 'f', -1, 64))
	}
	if !strings.Contains(string(doc), strings.Join(want, ", ")) {
		t.Fatalf("docs/metric-model.md does not list the bucket bounds %v", want)
	}

	vectorN := regexp.MustCompile(`^vector\(([0-9.]+)\)$`)
	classes := map[string]bool{}
	for _, g := range parseRules(t) {
		for _, r := range g.Rules {
			if r.Record != "bantay:latency_threshold_milliseconds" {
				continue
			}
			m := vectorN.FindStringSubmatch(strings.TrimSpace(r.Expr))
			if m == nil {
				t.Errorf("threshold rule %v: expr %q is not vector(<ms>)", r.Labels, r.Expr)
				continue
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			if le := r.Labels["le"]; le != strconv.FormatFloat(v, 'f', -1, 64) {
				t.Errorf("threshold %s: le label %q differs from the value %s", r.Labels["route_class"], le, m[1])
			}
			if !bounds[r.Labels["le"]] {
				t.Errorf("threshold %s: %s ms is not a histogram bucket bound", r.Labels["route_class"], r.Labels["le"])
			}
			classes[r.Labels["route_class"]] = true
		}
	}
	for _, c := range []string{"intra_island", "inter_island"} {
		if !classes[c] {
			t.Errorf("no latency threshold for route class %s", c)
		}
	}
}

// The example Alertmanager configuration is valid for Debian's Alertmanager.
func TestAlertmanagerExampleConfig(t *testing.T) {
	bin := testenv.Binary(t, "amtool", "AMTOOL")
	out, err := exec.Command(bin, "check-config", "alertmanager/alertmanager.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	// Every alert named in it exists.
	b, _ := os.ReadFile("alertmanager/alertmanager.yml")
	alerts := map[string]bool{}
	for _, g := range parseRules(t) {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts[r.Alert] = true
			}
		}
	}
	for _, m := range regexp.MustCompile(`Bantay[A-Za-z]+`).FindAllString(string(b), -1) {
		if !alerts[m] {
			t.Errorf("alertmanager.yml names %s, which is no alert", m)
		}
	}
}

// The rule files load and evaluate in a real Prometheus (Debian's 2.42) fed
// by remote write with demo data: every recording rule produces series.
func TestRulesEvaluateInPrometheus(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, abs)
	}
	cfg := promtest.DefaultPrometheusConfig + "rule_files:\n  - " + strings.Join(files, "\n  - ") + "\n"
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := promtest.StartPrometheus(t, "--config.file="+cfgFile)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := promtest.RemoteWrite(ctx, prom.RemoteWriteURL(), promtest.DemoSeries(time.Now(), 60)); err != nil {
		t.Fatal(err)
	}

	var records []string
	for _, g := range parseRules(t) {
		for _, r := range g.Rules {
			if r.Record != "" && !slices.Contains(records, r.Record) {
				records = append(records, r.Record)
			}
		}
	}
	c := prom.Client()
	// Groups run every 15 s (the SLO group every minute); wait for up to
	// two minutes, polling every second.
	missing := records
	for range 120 {
		var still []string
		for _, rec := range missing {
			res, err := c.Query(ctx, rec, time.Time{})
			if err != nil {
				t.Fatalf("%s: %v", rec, err)
			}
			if res.Len() == 0 {
				still = append(still, rec)
			}
		}
		if missing = still; len(missing) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Second):
		}
	}
	if len(missing) > 0 {
		t.Fatalf("recording rules without output after evaluation: %v", missing)
	}

	// A spot check of the values: the demo's Manila -> Baguio path is
	// intra-island and fast (about 9 ms), Manila -> Davao inter-island.
	for _, want := range []struct{ expr, route string }{
		{`path:route_class:info{src_city="Manila", dst_city="Baguio"}`, "intra_island"},
		{`path:route_class:info{src_city="Manila", dst_city="Davao"}`, "inter_island"},
	} {
		res, err := c.Query(ctx, want.expr, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := res.Vector()
		if err != nil || len(v) != 1 || string(v[0].Metric["route_class"]) != want.route {
			t.Errorf("%s = %v (%v), want route_class %s", want.expr, v, err, want.route)
		}
	}
	res, err := c.Query(ctx, `path:network_latency_milliseconds:p50_rate5m{src_city="Manila", dst_city="Baguio"}`, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Vector(); err != nil || len(v) != 1 || v[0].Value < 5 || v[0].Value > 15 {
		t.Errorf("Manila -> Baguio p50 = %v (%v), want about 9 ms", v, err)
	}
}

// alertStates posts alerts to a real Alertmanager running the example
// configuration and returns each alert's final state (active, suppressed),
// keyed by key(labels).
func alertStates(t *testing.T, alerts []promtest.PostableAlert, key func(map[string]string) string) map[string]string {
	t.Helper()
	sink := promtest.NewWebhookSink(t)
	cfg, err := os.ReadFile("alertmanager/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's receivers are placeholders; send both to the test's sink.
	text := regexp.MustCompile(`http://127\.0\.0\.1:9095/\w+`).ReplaceAllString(string(cfg), sink.URL)
	cfgFile := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	am := promtest.StartAlertmanager(t, "--config.file="+cfgFile)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := am.PostAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	// Inhibition is decided as Alertmanager processes the alerts; poll the
	// API (bounded) until every alert has a final state.
	var got []promtest.GettableAlert
	for range 100 {
		if got, err = am.Alerts(ctx); err != nil {
			t.Fatal(err)
		}
		settled := len(got) == len(alerts)
		for _, a := range got {
			settled = settled && a.Status.State != "unprocessed"
		}
		if settled {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	state := map[string]string{}
	for _, a := range got {
		state[key(a.Labels)] = a.Status.State
	}
	return state
}

func wantStates(t *testing.T, state, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if state[k] != w {
			t.Errorf("%s: state %q, want %q (all: %v)", k, state[k], w, state)
		}
	}
}

// With the example Alertmanager configuration, a carrier-wide alert
// suppresses the per-path alerts of that carrier (but not of others), so one
// carrier problem pages once.
func TestAlertmanagerInhibitsPathAlertsUnderCarrierAlert(t *testing.T) {
	path := func(carrier, dst string) promtest.PostableAlert {
		return promtest.PostableAlert{Labels: map[string]string{
			"alertname": "BantayPathLatencySLOBreach", "severity": "warning",
			"src_city": "Cebu", "dst_city": dst, "carrier": carrier, "network_type": "4g",
		}}
	}
	state := alertStates(t, []promtest.PostableAlert{
		{Labels: map[string]string{"alertname": "BantayCarrierDegraded", "severity": "critical", "carrier": "Smart"}},
		path("Smart", "Manila"), path("Smart", "Davao"), path("Globe", "Manila"),
	}, func(l map[string]string) string { return l["alertname"] + "/" + l["carrier"] + "/" + l["dst_city"] })
	wantStates(t, state, map[string]string{
		"BantayCarrierDegraded/Smart/":            "active",
		"BantayPathLatencySLOBreach/Smart/Manila": "suppressed",
		"BantayPathLatencySLOBreach/Smart/Davao":  "suppressed",
		"BantayPathLatencySLOBreach/Globe/Manila": "active",
	})
}

// A store that cannot write pages once: its refused writes (reason
// unwritable) are explained by it, on that collector only.
func TestAlertmanagerInhibitsRefusedWritesUnderStoreNotWritable(t *testing.T) {
	collector := func(alertname, instance string) promtest.PostableAlert {
		return promtest.PostableAlert{Labels: map[string]string{
			"alertname": alertname, "severity": "critical", "job": "bantay-collector", "instance": instance,
		}}
	}
	state := alertStates(t, []promtest.PostableAlert{
		collector("BantayStoreNotWritable", "10.0.0.1:8080"),
		collector("BantayStoreRejectingWrites", "10.0.0.1:8080"),
		collector("BantayStoreRejectingWrites", "10.0.0.2:8080"),
	}, func(l map[string]string) string { return l["alertname"] + "/" + l["instance"] })
	wantStates(t, state, map[string]string{
		"BantayStoreNotWritable/10.0.0.1:8080":     "active",
		"BantayStoreRejectingWrites/10.0.0.1:8080": "suppressed",
		"BantayStoreRejectingWrites/10.0.0.2:8080": "active",
	})
}
