package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/bantay-noc/bantay/dashboards"
	"github.com/bantay-noc/bantay/internal/harness/history"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// queryFlags is a query benchmark: one history, opened by Bantay and by
// Prometheus, every dashboard and rule expression over each range.
type queryFlags struct {
	fleetFlags
	dir          string
	span         time.Duration
	interval     time.Duration
	reps         int
	workers      int
	prometheus   string
	bantayBlocks string
	bantayBin    string
	ranges       string
	jsonPath     string
}

type queryRange struct {
	name      string
	rng, step time.Duration
}

// queryRanges are the dashboards' time ranges with the step Grafana uses
// for each at a panel's usual width.
var queryRanges = []queryRange{
	{"1h", time.Hour, 15 * time.Second},
	{"24h", 24 * time.Hour, 5 * time.Minute},
	{"7d", 7 * 24 * time.Hour, 30 * time.Minute},
}

// parseQueryRanges reads -ranges.
func parseQueryRanges(s string) ([]queryRange, error) {
	var out []queryRange
	for name := range strings.SplitSeq(s, ",") {
		i := slices.IndexFunc(queryRanges, func(r queryRange) bool { return r.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-ranges: %q is not 1h, 24h or 7d", name)
		}
		out = append(out, queryRanges[i])
	}
	return out, nil
}

// prometheusMaxBlock is the largest block Prometheus compacts to with its
// default retention of 15 d: a tenth of it (cmd/prometheus).
const prometheusMaxBlock = 36 * time.Hour

func queryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var q queryFlags
	q.fleetFlags.register(fs)
	fs.StringVar(&q.dir, "dir", "", "working directory: the history is written once to <dir>/history and reused by later runs with the same fleet, span and interval (required)")
	fs.DurationVar(&q.span, "span", 7*24*time.Hour, "how much history to write (at most 15d, the store's default retention)")
	fs.DurationVar(&q.interval, "interval", 15*time.Second, "the probes' export interval in the history")
	fs.IntVar(&q.reps, "reps", 5, "repetitions of every query on each side (1 to 50)")
	fs.IntVar(&q.workers, "workers", 2, "goroutines writing the history")
	fs.StringVar(&q.prometheus, "prometheus", "/usr/bin/prometheus", "the Prometheus to compare with (Debian's 2.42)")
	fs.StringVar(&q.bantayBlocks, "bantay-blocks", "compacted", "the block layout Bantay opens: compacted (Prometheus's, up to 36h blocks) or 2h (every head block kept as written)")
	fs.StringVar(&q.bantayBin, "bantay-bin", "", "a bantay-collector binary to run instead of building this tree's (to measure another version)")
	fs.StringVar(&q.ranges, "ranges", "1h,24h,7d", "the ranges to query, in this order: 1h (15 s step), 24h (5 m), 7d (30 m)")
	fs.StringVar(&q.jsonPath, "json", "", "write every measurement to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ranges, err := parseQueryRanges(q.ranges)
	if err != nil {
		return err
	}
	switch {
	case q.dir == "":
		return errors.New("query: -dir is required")
	case q.span < time.Hour || q.span > 15*24*time.Hour:
		return fmt.Errorf("-span %v: want 1h to 15d", q.span)
	case q.interval < time.Second:
		return fmt.Errorf("-interval %v: want at least 1s", q.interval)
	case q.reps < 1 || q.reps > 50:
		return fmt.Errorf("-reps %d: want 1 to 50", q.reps)
	case q.bantayBlocks != "compacted" && q.bantayBlocks != "2h":
		return fmt.Errorf("-bantay-blocks %q: want compacted or 2h", q.bantayBlocks)
	}
	fleet, err := q.fleet()
	if err != nil {
		return err
	}
	meta, err := q.history(ctx, fleet, stderr)
	if err != nil {
		return err
	}
	run := filepath.Join(q.dir, "run")
	if err := os.RemoveAll(run); err != nil {
		return err
	}
	res := queryResult{History: meta, BantayBlocks: q.bantayBlocks, Reps: q.reps}

	// Cold starts one after the other, so neither competes with the other's
	// start for the two cores; then both stay up and the queries alternate.
	bantayDir := filepath.Join(run, "bantay")
	if err := linkTree(filepath.Join(q.dir, "history", q.bantayBlocks), filepath.Join(bantayDir, "data")); err != nil {
		return err
	}
	bin := q.bantayBin
	if bin == "" {
		if bin, err = buildCollector(ctx, bantayDir); err != nil {
			return err
		}
	}
	launched := time.Now()
	b, err := launchBantay(bantayDir, fleet, defaultBlockDuration, bin)
	if err != nil {
		return err
	}
	defer b.stop()
	bantay := &queryTarget{name: "bantay", base: "http://" + b.web, token: b.readerToken, log: b.logPath, pid: b.cmd.Process.Pid}
	if res.ColdStart.Bantay, err = bantay.coldStart(ctx, launched, meta.End); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bantay: ready %.2f s, first query %.2f s\n", res.ColdStart.Bantay.ReadyS, res.ColdStart.Bantay.FirstQueryS)

	promDir := filepath.Join(run, "prometheus")
	if err := linkTree(filepath.Join(q.dir, "history", "compacted"), filepath.Join(promDir, "data")); err != nil {
		return err
	}
	launched = time.Now()
	prom, stopProm, err := launchPrometheus(q.prometheus, promDir)
	if err != nil {
		return err
	}
	defer stopProm()
	if res.ColdStart.Prometheus, err = prom.coldStart(ctx, launched, meta.End); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "prometheus: ready %.2f s, first query %.2f s\n", res.ColdStart.Prometheus.ReadyS, res.ColdStart.Prometheus.FirstQueryS)

	exprs, err := benchExpressions(ctx, bantay.client())
	if err != nil {
		return err
	}
	end := meta.End
	for _, r := range ranges {
		if r.rng > q.span {
			continue
		}
		for _, e := range exprs {
			expr := e.expand(r.step, r.rng)
			m := queryMeasure{Source: e.source, Expr: expr, Range: r.name, StepS: r.step.Seconds(), Instant: e.instant}
			start, stop := promtest.AlignToStep(end.Add(-r.rng), r.step), promtest.AlignToStep(end, r.step)
			for range q.reps {
				for _, side := range []*queryTarget{bantay, prom} {
					d, n, err := side.timeQuery(ctx, expr, e.instant, start, stop, r.step)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if err != nil {
						// A timeout is a result: counted, named, and left out of the times.
						m.Errors = append(m.Errors, fmt.Sprintf("%s: %v", side.name, err))
						fmt.Fprintf(stderr, "%s: %s over %s: %v\n", side.name, e.source, r.name, err)
						continue
					}
					if side == bantay {
						m.BantayS, m.BantayCPUS, m.BantaySeries = append(m.BantayS, d.wall), append(m.BantayCPUS, d.cpu), n
					} else {
						m.PrometheusS, m.PrometheusCPUS, m.PrometheusSeries = append(m.PrometheusS, d.wall), append(m.PrometheusCPUS, d.cpu), n
					}
				}
			}
			m.summarise()
			fmt.Fprintf(stderr, "%-4s %6.3f s / %6.3f s = %5.2f  CPU %6.2f s / %6.2f s  %s\n", r.name, m.BantayMedianS, m.PrometheusMedianS, m.Ratio,
				m.BantayCPUMedianS, m.PrometheusCPUMedianS, e.source)
			res.Queries = append(res.Queries, m)
		}
	}
	res.summarise()
	res.print(stdout)
	if q.jsonPath != "" {
		return writeJSONFile(q.jsonPath, res)
	}
	return nil
}

// historyMeta describes a written history; a run with the same fleet,
// span and interval reuses it.
type historyMeta struct {
	Probes, Targets, Uplinks int
	SpanS, IntervalS         float64
	Start, End               time.Time
	Series                   int
	Samples                  int64
	LabelsS                  float64 `json:"labels_s"`  // capturing the label sets from a live collector
	WriteS                   float64 `json:"write_s"`   // writing the 2 h blocks
	CompactS                 float64 `json:"compact_s"` // compacting a copy as Prometheus would
	Blocks2h                 int     `json:"blocks_2h"` // blocks as written
	BlocksCompacted          int     `json:"blocks_compacted"`
	Bytes2h                  int64   `json:"bytes_2h"`
}

func (q *queryFlags) history(ctx context.Context, fleet []otlpload.Probe, log io.Writer) (historyMeta, error) {
	dir := filepath.Join(q.dir, "history")
	metaPath := filepath.Join(dir, "meta.json")
	var meta historyMeta
	if data, err := os.ReadFile(metaPath); err == nil && json.Unmarshal(data, &meta) == nil &&
		meta.Probes == q.probes && meta.Targets == q.targets && meta.Uplinks == q.uplinks &&
		meta.SpanS == q.span.Seconds() && meta.IntervalS == q.interval.Seconds() {
		fmt.Fprintf(log, "reusing the history in %s (%d series, %d samples, %v to %v)\n", dir, meta.Series, meta.Samples, meta.Start, meta.End)
		return meta, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return meta, err
	}
	meta = historyMeta{Probes: q.probes, Targets: q.targets, Uplinks: q.uplinks, SpanS: q.span.Seconds(), IntervalS: q.interval.Seconds()}
	began := time.Now()
	lsets, err := captureLabels(ctx, filepath.Join(q.dir, "labels"), fleet, log)
	if err != nil {
		return meta, err
	}
	meta.LabelsS = time.Since(began).Seconds()
	meta.End = time.Now().UTC().Truncate(time.Second)
	meta.Start = meta.End.Add(-q.span)
	fmt.Fprintf(log, "writing %d series × %v at %v into %s\n", len(lsets), q.span, q.interval, dir)
	st, err := history.Write(ctx, filepath.Join(dir, "2h"), lsets, history.Options{Start: meta.Start, End: meta.End,
		Interval: q.interval, BlockDuration: 2 * time.Hour, Workers: q.workers})
	if err != nil {
		return meta, err
	}
	meta.Series, meta.Samples, meta.Blocks2h, meta.WriteS = st.Series, st.Samples, st.Blocks, st.Elapsed.Seconds()
	if meta.Bytes2h, err = treeSize(filepath.Join(dir, "2h")); err != nil {
		return meta, err
	}
	fmt.Fprintf(log, "wrote %d samples in %d blocks (%d MiB) in %.0f s; compacting a copy\n", st.Samples, st.Blocks, meta.Bytes2h>>20, meta.WriteS)
	began = time.Now()
	compacted := filepath.Join(dir, "compacted")
	if err := linkTree(filepath.Join(dir, "2h"), compacted); err != nil {
		return meta, err
	}
	if meta.BlocksCompacted, err = history.Compact(ctx, compacted, prometheusMaxBlock, slog.New(slog.DiscardHandler)); err != nil {
		return meta, err
	}
	meta.CompactS = time.Since(began).Seconds()
	for _, leftover := range []string{"wal", "chunks_head", "lock"} {
		if err := os.RemoveAll(filepath.Join(compacted, leftover)); err != nil {
			return meta, err
		}
	}
	return meta, writeJSONFile(metaPath, meta)
}

// roundCounterNames are the store's names of the round counters
// (docs/metric-model.md), which the probe sends and the load tool does not:
// the history adds them beside each target's attempts counter.
var roundCounterNames = []string{"bantay_probe_duplicates_total", "bantay_probe_reordered_total",
	"bantay_probe_jitter_milliseconds_total", "bantay_probe_jitter_pairs_total"}

// captureLabels runs a collector with the shipped pipeline for the fleet,
// sends each probe uplink's export, and reads back the label sets the store
// made of them: the history's series are exactly the pipeline's.
func captureLabels(ctx context.Context, dir string, fleet []otlpload.Probe, log io.Writer) ([]labels.Labels, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin, err := buildCollector(ctx, dir)
	if err != nil {
		return nil, err
	}
	b, err := startBantay(ctx, dir, fleet, defaultBlockDuration, bin)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	// Every stream exports within the first interval of the run.
	rf := runFlags{fleetFlags: fleetFlagsOf(fleet), endpoint: b.grpc, protocol: otlpload.GRPC, interval: 2 * time.Second,
		duration: 3 * time.Second, timeout: time.Minute, tokenDir: filepath.Join(dir, "tokens")}
	sum, err := rf.execute(ctx, log)
	if err != nil {
		return nil, err
	}
	if sum.AckedPoints < int64(rf.series()) {
		return nil, fmt.Errorf("capturing labels: %d of %d points acknowledged (refused: %v)", sum.AckedPoints, rf.series(), sum.RefusalExamples)
	}
	c := (&queryTarget{base: "http://" + b.web, token: b.readerToken}).client()
	found, err := c.Series(ctx, []string{`{job="bantay-probe"}`}, time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("capturing labels: %w", err)
	}
	var out []labels.Labels
	for _, ls := range found {
		l := labels.FromMap(labelMap(ls))
		out = append(out, l)
		if l.Get(model.MetricNameLabel) == "bantay_probe_attempts_total" {
			for _, name := range roundCounterNames {
				out = append(out, labels.NewBuilder(l).Set(model.MetricNameLabel, name).Labels())
			}
		}
	}
	fmt.Fprintf(log, "captured %d label sets from the collector (%d with the round counters)\n", len(found), len(out))
	return out, nil
}

func fleetFlagsOf(fleet []otlpload.Probe) fleetFlags {
	return fleetFlags{probes: len(fleet), targets: len(fleet[0].Targets), uplinks: len(fleet[0].Uplinks)}
}

func labelMap(ls model.LabelSet) map[string]string {
	m := make(map[string]string, len(ls))
	for k, v := range ls {
		m[string(k)] = string(v)
	}
	return m
}

// queryTarget is one side's Prometheus API.
type queryTarget struct {
	name, base, token, log string
	pid                    int
}

func (t *queryTarget) client() *promtest.Client {
	c := promtest.NewClient(t.base)
	c.HTTP.Timeout = benchQueryTimeout + time.Minute
	if t.token != "" {
		c.HTTP.Transport = config.NewAuthorizationCredentialsRoundTripper("Bearer", config.NewInlineSecret(t.token), http.DefaultTransport)
	}
	return c
}

// benchQueryTimeout is both engines' query timeout: their default of 2 m
// is shorter than a 7-day query takes on a busy shared machine.
const benchQueryTimeout = 10 * time.Minute

// coldStartProbe is the query a NOC's first dashboard asks (probe-health's
// attempts per second); "answered" means it returned data.
const coldStartProbe = `sum(rate(bantay_probe_attempts_total[5m]))`

// coldStart is the time from the process's launch to /-/ready and to the
// first answered query, polled every 20 ms for at most 10 minutes.
type coldStart struct {
	ReadyS      float64 `json:"ready_s"`
	FirstQueryS float64 `json:"first_query_s"`
}

func (t *queryTarget) coldStart(ctx context.Context, launched, at time.Time) (coldStart, error) {
	var cs coldStart
	ready, err := pollReady(ctx, t.base+"/-/ready", launched)
	if err != nil {
		return cs, fmt.Errorf("%s: %w (log %s)", t.name, err, t.log)
	}
	cs.ReadyS = ready.Seconds()
	c := t.client()
	for range 30_000 {
		r, err := c.Query(ctx, coldStartProbe, at)
		if err == nil && r.Len() > 0 {
			cs.FirstQueryS = time.Since(launched).Seconds()
			return cs, nil
		}
		if ctx.Err() != nil {
			return cs, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cs, fmt.Errorf("%s: %s never answered with data", t.name, coldStartProbe)
}

// pollReady polls url every 20 ms until it answers 200, for at most 10
// minutes, and returns how long after launched that was.
func pollReady(ctx context.Context, url string, launched time.Time) (time.Duration, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for range 30_000 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(launched), nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s not ready after 10 minutes: %v", url, last)
}

// timing is one query's cost: wall time from the request to the decoded
// answer, and the server process's CPU time meanwhile (on a shared machine
// the wall time is mostly the wait for a core; the CPU time is not).
type timing struct{ wall, cpu float64 }

// timeQuery runs one range query (an instant one at end when instant) and
// returns its cost and the number of series in the answer.
func (t *queryTarget) timeQuery(ctx context.Context, expr string, instant bool, start, end time.Time, step time.Duration) (timing, int, error) {
	c := t.client()
	cpu0, _, err := usage([]int{t.pid})
	if err != nil {
		return timing{}, 0, err
	}
	began := time.Now()
	var r promtest.Result
	if instant {
		r, err = c.Query(ctx, expr, end)
	} else {
		r, err = c.QueryRange(ctx, expr, start, end, step)
	}
	if err != nil {
		return timing{}, 0, err
	}
	wall := time.Since(began).Seconds()
	cpu1, _, err := usage([]int{t.pid})
	return timing{wall, cpu1 - cpu0}, r.Len(), err
}

// launchPrometheus starts Prometheus on dir/data with no scrape targets and
// no rules, as the query side of the comparison.
func launchPrometheus(bin, dir string) (*queryTarget, func(), error) {
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {}\n"), 0o644); err != nil {
		return nil, nil, err
	}
	addrs, err := freeAddrs(1)
	if err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(dir, "prometheus.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer log.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=15d", "--web.listen-address="+addrs[0], "--query.timeout="+benchQueryTimeout.String())
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start prometheus: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	return &queryTarget{name: "prometheus", base: "http://" + addrs[0], log: logPath, pid: cmd.Process.Pid}, stop, nil
}

// benchExpr is one expression of a dashboard panel or a shipped rule, with
// the dashboard's variables (all set to All, or to their first value where
// All is not offered) but not yet the built-in intervals.
type benchExpr struct {
	source string
	expr   string
	// instant: a table panel's target, which Grafana sends as one instant
	// query at the range's end (its $__range is the whole range).
	instant bool
}

// expand puts in Grafana's built-in intervals for the step and range.
func (e benchExpr) expand(step, rng time.Duration) string {
	return promtest.ExpandGrafanaVars(e.expr, promtest.BuiltinVars(step, rng, 15*time.Second))
}

// benchExpressions is every Prometheus expression of the shipped dashboards
// and rule files, once each.
func benchExpressions(ctx context.Context, c *promtest.Client) ([]benchExpr, error) {
	tmp, err := os.MkdirTemp("", "bantay-dashboards")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	files, err := fs.Glob(dashboards.Grafana, "grafana/*.json")
	if err != nil {
		return nil, err
	}
	var out []benchExpr
	seen := map[string]bool{}
	add := func(source, expr string, instant bool) {
		if !seen[expr] {
			seen[expr] = true
			out = append(out, benchExpr{source: source, expr: expr, instant: instant})
		}
	}
	for _, f := range files {
		data, err := dashboards.Grafana.ReadFile(f)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(tmp, filepath.Base(f))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
		qs, err := promtest.DashboardQueries(path)
		if err != nil {
			return nil, err
		}
		defs, err := promtest.DashboardVariables(path)
		if err != nil {
			return nil, err
		}
		vars := map[string][]string{}
		for _, d := range defs {
			if d.Type != "query" || d.DatasourceType != "prometheus" {
				continue
			}
			if d.IncludeAll {
				vars[d.Name] = []string{promtest.AllValue}
				continue
			}
			// Grafana shows the first value of a variable without All.
			selector, label, err := promtest.ParseLabelValues(d.Query)
			if err != nil {
				return nil, fmt.Errorf("%s: variable %s: %w", f, d.Name, err)
			}
			values, err := c.LabelValues(ctx, label, []string{promtest.ExpandDashboardVars(selector, vars, defs)}, time.Time{}, time.Time{})
			if err != nil || len(values) == 0 {
				return nil, fmt.Errorf("%s: values of variable %s: %v %v", f, d.Name, values, err)
			}
			vars[d.Name] = values[:1]
		}
		for _, q := range qs {
			if q.DatasourceType == "prometheus" {
				add(fmt.Sprintf("%s / %s [%s]", q.Dashboard, q.Panel, q.RefID), promtest.ExpandDashboardVars(q.Expr, vars, defs), q.Instant)
			}
		}
	}
	p := parser.NewParser(parser.Options{})
	for _, name := range dashboards.RuleFileNames {
		data, err := dashboards.RuleFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		groups, errs := rulefmt.Parse(data, false, model.UTF8Validation, p, promslog.NewNopLogger())
		if len(errs) > 0 {
			return nil, fmt.Errorf("%s: %w", name, errors.Join(errs...))
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				add(fmt.Sprintf("%s %s%s", filepath.Base(name), r.Record, r.Alert), strings.TrimSpace(r.Expr), false)
			}
		}
	}
	return out, nil
}

// queryMeasure is one expression over one range on both sides.
type queryMeasure struct {
	Source           string    `json:"source"`
	Expr             string    `json:"expr"`
	Range            string    `json:"range"`
	StepS            float64   `json:"step_s"`
	Instant          bool      `json:"instant"`
	BantayS          []float64 `json:"bantay_s"`
	PrometheusS      []float64 `json:"prometheus_s"`
	BantayCPUS       []float64 `json:"bantay_cpu_s"`
	PrometheusCPUS   []float64 `json:"prometheus_cpu_s"`
	BantaySeries     int       `json:"bantay_series"`
	PrometheusSeries int       `json:"prometheus_series"`
	// Errors are the queries that failed (a timeout: benchQueryTimeout).
	Errors []string `json:"errors,omitempty"`

	BantayMedianS, PrometheusMedianS       float64
	BantayP99S, PrometheusP99S             float64
	BantayCPUMedianS, PrometheusCPUMedianS float64
	// Ratio is Bantay's median ÷ Prometheus's (below 1: Bantay faster); 0
	// when one side never answered. CPURatio is the same of the CPU times
	// (/proc ticks: 10 ms resolution, so only meaningful for heavy queries).
	Ratio, CPURatio float64
}

func (m *queryMeasure) summarise() {
	if !m.compared() {
		return
	}
	m.BantayMedianS, m.BantayP99S = quantile(m.BantayS, 0.5), quantile(m.BantayS, 0.99)
	m.PrometheusMedianS, m.PrometheusP99S = quantile(m.PrometheusS, 0.5), quantile(m.PrometheusS, 0.99)
	m.Ratio = m.BantayMedianS / m.PrometheusMedianS
	m.BantayCPUMedianS, m.PrometheusCPUMedianS = quantile(m.BantayCPUS, 0.5), quantile(m.PrometheusCPUS, 0.5)
	if m.PrometheusCPUMedianS > 0 {
		m.CPURatio = m.BantayCPUMedianS / m.PrometheusCPUMedianS
	}
}

// compared is whether both sides answered at least once.
func (m *queryMeasure) compared() bool { return len(m.BantayS) > 0 && len(m.PrometheusS) > 0 }

// quantile is the nearest-rank quantile of xs.
func quantile(xs []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	i := int(float64(len(s))*q+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

type queryResult struct {
	History      historyMeta `json:"history"`
	BantayBlocks string      `json:"bantay_blocks"`
	Reps         int         `json:"reps"`
	ColdStart    struct {
		Bantay     coldStart `json:"bantay"`
		Prometheus coldStart `json:"prometheus"`
	} `json:"cold_start"`
	Queries []queryMeasure `json:"queries"`
	// ByRange summarises the expressions with data on both sides.
	ByRange []rangeSummary `json:"by_range"`
}

type rangeSummary struct {
	Range string `json:"range"`
	// Exprs answered with data on both sides; Empty answered with none;
	// Failed had at least one query fail (its times are those that did not).
	Exprs, Empty, Failed int
	// MedianRatio is the median over the expressions of their ratios;
	// WorstRatio the highest, with its expression.
	MedianRatio, WorstRatio float64
	Worst                   string
	// Sums of the expressions' medians: a dashboard's whole load.
	BantaySumS, PrometheusSumS       float64
	BantayCPUSumS, PrometheusCPUSumS float64
}

func (r *queryResult) summarise() {
	for _, qr := range queryRanges {
		s := rangeSummary{Range: qr.name}
		var ratios []float64
		for _, m := range r.Queries {
			if m.Range != qr.name {
				continue
			}
			if len(m.Errors) > 0 {
				s.Failed++
			}
			if !m.compared() {
				continue
			}
			if m.BantaySeries == 0 && m.PrometheusSeries == 0 {
				s.Empty++
				continue
			}
			s.Exprs++
			ratios = append(ratios, m.Ratio)
			s.BantaySumS += m.BantayMedianS
			s.PrometheusSumS += m.PrometheusMedianS
			s.BantayCPUSumS += m.BantayCPUMedianS
			s.PrometheusCPUSumS += m.PrometheusCPUMedianS
			if m.Ratio > s.WorstRatio {
				s.WorstRatio, s.Worst = m.Ratio, m.Source
			}
		}
		if len(ratios) > 0 {
			s.MedianRatio = quantile(ratios, 0.5)
			r.ByRange = append(r.ByRange, s)
		}
	}
}

func (r *queryResult) print(w io.Writer) {
	h := r.History
	fmt.Fprintf(w, "history: %d series, %d samples, %v to %v; Bantay opens the %s blocks, Prometheus the compacted ones; %d reps\n",
		h.Series, h.Samples, h.Start.Format(time.RFC3339), h.End.Format(time.RFC3339), r.BantayBlocks, r.Reps)
	fmt.Fprintf(w, "cold start (ready / first query): bantay %.2f / %.2f s, prometheus %.2f / %.2f s\n",
		r.ColdStart.Bantay.ReadyS, r.ColdStart.Bantay.FirstQueryS, r.ColdStart.Prometheus.ReadyS, r.ColdStart.Prometheus.FirstQueryS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "range\tstep\tbantay p50\tp99\tprometheus p50\tp99\tratio\tCPU b/p\tseries b/p\texpression\terrors")
	qs := slices.Clone(r.Queries)
	sort.SliceStable(qs, func(i, j int) bool { return !qs[i].compared() && qs[j].compared() || qs[i].Ratio > qs[j].Ratio })
	for _, m := range qs {
		fmt.Fprintf(tw, "%s\t%gs\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t%.2f/%.2f\t%d/%d\t%s\t%s\n", m.Range, m.StepS, m.BantayMedianS, m.BantayP99S,
			m.PrometheusMedianS, m.PrometheusP99S, m.Ratio, m.BantayCPUMedianS, m.PrometheusCPUMedianS, m.BantaySeries, m.PrometheusSeries, m.Source, strings.Join(m.Errors, "; "))
	}
	tw.Flush()
	for _, s := range r.ByRange {
		fmt.Fprintf(w, "%s: %d expressions with data (%d empty on both, %d with failed queries), median ratio %.2f, worst %.2f (%s), sum of medians %.2f s vs %.2f s, of CPU medians %.2f s vs %.2f s\n",
			s.Range, s.Exprs, s.Empty, s.Failed, s.MedianRatio, s.WorstRatio, s.Worst, s.BantaySumS, s.PrometheusSumS, s.BantayCPUSumS, s.PrometheusCPUSumS)
	}
}

// linkTree copies the TSDB directory src to dst, hard-linking the large
// files (chunks, indexes: a TSDB never writes into a finished block's) and
// copying the small ones, which a TSDB may rewrite (meta.json, tombstones).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() >= 1<<20 {
			return os.Link(path, target)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
}

func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	return n, err
}
