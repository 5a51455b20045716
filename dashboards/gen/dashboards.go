package main

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/logs"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The metric names and labels below are the contract in docs/metric-model.md.
const (
	// pathSel selects the paths chosen with the dashboard variables. Multi-value
	// variables expand to regex alternations, hence =~ everywhere.
	pathSel = `src_city=~"$src_city", dst_city=~"$dst_city", carrier=~"$carrier", network_type=~"$network_type"`

	// variableMetric is the series the path variables read their values from:
	// attempts exist for every path, even one whose every probe fails.
	variableMetric = "bantay_probe_attempts_total"

	// staleWindow is two probe intervals (15 s), as in the BantayProbeStale alert.
	staleWindow = "30s"

	// pathLatency is the latency histogram of the paths: phase="" leaves out
	// the per-phase series of http targets, which share the name.
	pathLatency = `network_latency_milliseconds_bucket{phase="", `
)

// promDS is the Prometheus data source of every panel: the $datasource
// variable, never a fixed uid, so the dashboards work against Bantay or any
// Prometheus-compatible data source the operator picks.
func promDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

func lokiDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("loki"), Uid: cog.ToPtr("${loki}")}
}

func datasourceVar() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus").
		Description("Bantay's Prometheus-compatible API, or a Prometheus/Thanos/Cortex fed by Bantay's remote write.")
}

func lokiVar() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("loki").
		Label("Logs").
		Type("loki").
		Description("The Loki-protocol store that receives Bantay's events.")
}

// labelVar is a label_values() query variable. multi variables offer "All",
// which expands to the custom all value ".*" rather than a long alternation.
func labelVar(name, label, selector string, multi bool) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", selector, name)
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
		Definition(q).
		Datasource(promDS()).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if multi {
		v = v.Multi(true).IncludeAll(true).AllValue(".*").
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
				Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
			})
	}
	return v
}

// pathVars are the four path variables; chained so that each offers only
// values that exist with the ones chosen before it.
func pathVars(multiCarrier bool) []cog.Builder[dashboard.VariableModel] {
	return []cog.Builder[dashboard.VariableModel]{
		labelVar("src_city", "From city", variableMetric, true),
		labelVar("dst_city", "To city", variableMetric+`{src_city=~"$src_city"}`, true),
		labelVar("carrier", "Carrier", variableMetric+`{src_city=~"$src_city", dst_city=~"$dst_city"}`, multiCarrier),
		labelVar("network_type", "Network type", variableMetric+`{src_city=~"$src_city", dst_city=~"$dst_city", carrier=~"$carrier"}`, multiCarrier),
	}
}

func base(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"bantay"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-1h", "now").
		// Manila time for the NOC; the store itself is UTC.
		Timezone("Asia/Manila").
		Refresh("30s").
		Link(dashboard.NewDashboardLinkBuilder("Bantay").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"bantay"}).
			AsDropdown(true).
			KeepTime(true).
			IncludeVars(true))
}

func prom(expr, legend string) *prometheus.DataqueryBuilder {
	q := prometheus.NewDataqueryBuilder().Datasource(promDS()).Expr(expr).Range()
	if legend != "" {
		q = q.LegendFormat(legend)
	}
	return q
}

// tableFooter is Grafana's default (hidden) footer, spelled out because the
// SDK's default leaves its required reducer list null.
func tableFooter() *common.TableFooterOptionsBuilder {
	return common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})
}

func promInstantTable(expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promDS()).Expr(expr).Instant().Format(prometheus.PromQueryFormatTable)
}

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func step(value *float64, color string) dashboard.Threshold {
	return dashboard.Threshold{Value: value, Color: color}
}

// latencyHeatmap is a heatmap of the histogram buckets: the rate of each
// bucket, which Grafana's "heatmap" format turns into per-bucket counts (it
// subtracts the cumulative buckets) and draws as the classic Prometheus
// heatmap.
func latencyHeatmap(title, sel string) *heatmap.PanelBuilder {
	return heatmap.NewPanelBuilder().
		Title(title).
		Datasource(promDS()).
		WithTarget(prometheus.NewDataqueryBuilder().
			Datasource(promDS()).
			Expr(fmt.Sprintf(`sum by (le) (rate(%s%s}[$__rate_interval]))`, pathLatency, sel)).
			Format(prometheus.PromQueryFormatHeatmap).
			LegendFormat("{{le}}").
			Range()).
		Calculate(false).
		Color(heatmap.NewHeatmapColorOptionsBuilder().
			Mode(heatmap.HeatmapColorModeScheme).
			// Viridis: readable for colour-blind operators on a wall screen.
			Scheme("Viridis").
			Scale(heatmap.HeatmapColorScaleExponential).
			Exponent(0.5).
			Steps(64)).
		YAxis(heatmap.NewYAxisConfigBuilder().Unit("ms").AxisLabel("latency")).
		RowsFrame(heatmap.NewRowsHeatmapOptionsBuilder().Layout(common.HeatmapCellLayoutLe)).
		CellGap(1).
		Tooltip(heatmap.NewHeatmapTooltipBuilder().Mode(common.TooltipDisplayModeSingle).YHistogram(true)).
		ShowLegend().
		Height(9)
}

func quantileExpr(q, by, sel, window string) string {
	return fmt.Sprintf(`histogram_quantile(%s, sum by (%s, le) (rate(%s%s}[%s])))`, q, by, pathLatency, sel, window)
}

// jitterExpr is the mean jitter (ms) of the selected rounds: summed RTT
// differences over summed pairs; no value where no round had two answers.
func jitterExpr(by, sel, window string) string {
	return fmt.Sprintf(`sum by (%[1]s) (rate(bantay_probe_jitter_milliseconds_total{%[2]s}[%[3]s])) / (sum by (%[1]s) (rate(bantay_probe_jitter_pairs_total{%[2]s}[%[3]s])) > 0)`, by, sel, window)
}

func lossExpr(by, sel, window string) string {
	// A path without failures has no failure series: "or 0 * attempts" reads
	// as 0 % loss instead of no data.
	return fmt.Sprintf(`(sum by (%[1]s) (rate(bantay_probe_failures_total{%[2]s}[%[3]s])) or 0 * sum by (%[1]s) (rate(bantay_probe_attempts_total{%[2]s}[%[3]s]))) / sum by (%[1]s) (rate(bantay_probe_attempts_total{%[2]s}[%[3]s]))`, by, sel, window)
}

// eventsPanel shows Bantay's events; the stream labels (service, kind,
// src_city, carrier, island_group) and kinds are those of docs/loki.md.
func eventsPanel(title, logQL string) *logs.PanelBuilder {
	return logs.NewPanelBuilder().
		Title(title).
		Description("Bantay's events (alerts, probe state changes, rejections) in the Loki-protocol store.").
		Datasource(lokiDS()).
		WithTarget(loki.NewDataqueryBuilder().Datasource(lokiDS()).Expr(logQL).MaxLines(500)).
		ShowTime(true).
		WrapLogMessage(true).
		EnableLogDetails(true).
		SortOrder(common.LogsSortOrderDescending).
		Height(10).
		Span(24)
}

func latencyHeatmapDashboard() *dashboard.DashboardBuilder {
	// Repeated panels get one value of a multi-value variable each, which
	// Grafana still regex-escapes: =~ is the matching operator.
	pathSelRow := `src_city=~"$src_city", dst_city=~"$dst_city", carrier=~"$carrier", network_type=~"$network_type"`
	return base("bantay-latency-heatmap", "Bantay / Latency heatmap",
		"Latency distribution of the probe histograms: all selected paths, per carrier, and per path.").
		Variables(append([]cog.Builder[dashboard.VariableModel]{datasourceVar(), lokiVar()}, pathVars(true)...)).
		WithPanel(latencyHeatmap("Latency distribution, all selected paths", pathSel).Span(16)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("p50 / p95 / p99, all selected paths").
			Datasource(promDS()).
			WithTarget(prom(quantileExpr("0.5", "job", pathSel, "$__rate_interval"), "p50")).
			WithTarget(prom(quantileExpr("0.95", "job", pathSel, "$__rate_interval"), "p95")).
			WithTarget(prom(quantileExpr("0.99", "job", pathSel, "$__rate_interval"), "p99")).
			Unit("ms").
			Height(9).
			Span(8)).
		WithRow(dashboard.NewRowBuilder("Per carrier")).
		WithPanel(latencyHeatmap("Latency distribution, $carrier", `src_city=~"$src_city", dst_city=~"$dst_city", carrier=~"$carrier", network_type=~"$network_type"`).
			Repeat("carrier").RepeatDirection(dashboard.PanelRepeatDirectionH).MaxPerRow(3).Span(8)).
		WithRow(dashboard.NewRowBuilder("From $src_city").Repeat("src_city")).
		WithPanel(latencyHeatmap("$src_city → $dst_city", pathSelRow).
			Repeat("dst_city").RepeatDirection(dashboard.PanelRepeatDirectionH).MaxPerRow(4).Span(6)).
		WithRow(dashboard.NewRowBuilder("Events")).
		WithPanel(eventsPanel("Path events for the selected cities and carriers",
			`{service="bantay", kind=~"path_degraded|path_recovered", src_city=~"$src_city", carrier=~"$carrier"}`))
}

// toMatrix turns an instant table of one value per (row, column) label
// pair into a matrix with those labels as row and column headers.
func toMatrix(row, column string) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{
		Id: "groupingToMatrix",
		Options: map[string]any{
			"rowField":    row,
			"columnField": column,
			"valueField":  "Value",
			"emptyValue":  "null",
		},
	}
}

func cityMatrixDashboard() *dashboard.DashboardBuilder {
	sel := `carrier="$carrier", network_type="$network_type", src_city=~"$src_city", dst_city=~"$dst_city"`
	// matrix is a src_city × dst_city table of expr over the time range.
	matrix := func(title, expr string) *table.PanelBuilder {
		return table.NewPanelBuilder().Footer(tableFooter()).
			Title(title).
			Datasource(promDS()).
			WithTarget(promInstantTable(expr)).
			WithTransformation(toMatrix("src_city", "dst_city")).
			Height(10).
			Span(12)
	}
	latency := func(title, q string) *table.PanelBuilder {
		return matrix(title, quantileExpr(q, "src_city, dst_city", sel, "$__range")).
			Description("Rows: from city. Columns: to city. Over the dashboard's time range, for one carrier and network type.").
			Unit("ms").
			Decimals(1).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(50.0), "yellow"), step(cog.ToPtr(100.0), "orange"), step(cog.ToPtr(200.0), "red"))).
			CellOptions(common.TableCellOptions{TableColoredBackgroundCellOptions: &common.TableColoredBackgroundCellOptions{
				Type: common.TableCellDisplayModeColorBackground,
			}})
	}
	return base("bantay-city-matrix", "Bantay / City × city matrix",
		"p50 and p95 latency, loss and jitter between every pair of cities for one carrier and network type.").
		Variables(append([]cog.Builder[dashboard.VariableModel]{datasourceVar()}, pathVars(false)...)).
		WithPanel(latency("p50 latency (ms), $carrier $network_type", "0.5")).
		WithPanel(latency("p95 latency (ms), $carrier $network_type", "0.95")).
		WithPanel(matrix("Loss by path, $carrier $network_type", lossExpr("src_city, dst_city", sel, "$__range")).
			Unit("percentunit").
			Decimals(2).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(0.01), "yellow"), step(cog.ToPtr(0.05), "red")))).
		WithPanel(matrix("Jitter by path (ms), $carrier $network_type", jitterExpr("src_city, dst_city", sel, "$__range")).
			Description("Mean difference between the RTTs of consecutive probes of a round (icmp and udp targets). Red from 30 ms, the BantayPathJitterHigh threshold.").
			Unit("ms").
			Decimals(1).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(10.0), "yellow"), step(cog.ToPtr(30.0), "red"))))
}

func carrierComparisonDashboard() *dashboard.DashboardBuilder {
	pathRow := pathSel // one src_city and dst_city per repeated panel
	return base("bantay-carrier-comparison", "Bantay / Carrier comparison",
		"The same paths measured over each carrier and network type, side by side.").
		Variables(append([]cog.Builder[dashboard.VariableModel]{datasourceVar()}, pathVars(true)...)).
		WithPanel(table.NewPanelBuilder().Footer(tableFooter()).
			Title("p95 latency (ms) by path and carrier").
			Description("Rows: path. Columns: carrier and network type. Over the dashboard's time range.").
			Datasource(promDS()).
			WithTarget(promInstantTable(
				`label_join(label_join(` + quantileExpr("0.95", "src_city, dst_city, carrier, network_type", pathSel, "$__range") +
					`, "path", " → ", "src_city", "dst_city"), "uplink", " ", "carrier", "network_type")`)).
			WithTransformation(toMatrix("path", "uplink")).
			Unit("ms").
			Decimals(1).
			Height(10).
			Span(24)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("p95 latency by carrier, all selected paths").
			Datasource(promDS()).
			WithTarget(prom(quantileExpr("0.95", "carrier, network_type", pathSel, "$__rate_interval"), "{{carrier}} {{network_type}}")).
			Unit("ms").
			Height(9).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Loss by carrier, all selected paths").
			Datasource(promDS()).
			WithTarget(prom(lossExpr("carrier, network_type", pathSel, "$__rate_interval"), "{{carrier}} {{network_type}}")).
			Unit("percentunit").
			Min(0).
			Height(9).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Jitter by carrier, all selected paths").
			Description("Mean difference between the RTTs of consecutive probes of a round.").
			Datasource(promDS()).
			WithTarget(prom(jitterExpr("carrier, network_type", pathSel, "$__rate_interval"), "{{carrier}} {{network_type}}")).
			Unit("ms").
			Min(0).
			Height(9).
			Span(24)).
		WithRow(dashboard.NewRowBuilder("From $src_city").Repeat("src_city")).
		WithPanel(timeseries.NewPanelBuilder().
			Title("$src_city → $dst_city: p95 by carrier").
			Datasource(promDS()).
			WithTarget(prom(quantileExpr("0.95", "carrier, network_type", pathRow, "$__rate_interval"), "{{carrier}} {{network_type}}")).
			Unit("ms").
			Repeat("dst_city").RepeatDirection(dashboard.PanelRepeatDirectionH).MaxPerRow(4).
			Height(8).
			Span(6))
}

func probeHealthDashboard() *dashboard.DashboardBuilder {
	sel := `src_city=~"$src_city", carrier=~"$carrier", network_type=~"$network_type"`
	uplinks := "probe, src_city, carrier, network_type"
	seen1h := fmt.Sprintf(`group by (%s) (max_over_time(bantay_probe_attempts_total{%s}[1h]))`, uplinks, sel)
	fresh := fmt.Sprintf(`group by (%s) (count_over_time(bantay_probe_attempts_total{%s}[%s]))`, uplinks, sel, staleWindow)
	return base("bantay-probe-health", "Bantay / Probe health",
		"Which probe uplinks report, which are stale (no data for two probe intervals), why probes fail, when each was last seen.").
		Variables(append([]cog.Builder[dashboard.VariableModel]{datasourceVar(), lokiVar()}, pathVars(true)...)).
		WithPanel(stat.NewPanelBuilder().
			Title("Uplinks reporting").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`count(%s) or vector(0)`, fresh), "")).
			ColorMode(common.BigValueColorModeValue).
			GraphMode(common.BigValueGraphModeNone).
			Height(5).
			Span(6)).
		WithPanel(stat.NewPanelBuilder().
			Title("Uplinks stale").
			Description("Seen in the last hour, but nothing for two probe intervals (30 s). Same rule as the BantayProbeStale alert.").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`count(%s unless on (probe, carrier, network_type) %s) or vector(0)`, seen1h, fresh), "")).
			ColorMode(common.BigValueColorModeBackground).
			GraphMode(common.BigValueGraphModeNone).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(1.0), "red"))).
			Height(5).
			Span(6)).
		WithPanel(stat.NewPanelBuilder().
			Title("Probe attempts / s").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`sum(rate(bantay_probe_attempts_total{%s}[$__rate_interval]))`, sel), "")).
			Unit("reqps").
			GraphMode(common.BigValueGraphModeArea).
			Height(5).
			Span(6)).
		WithPanel(stat.NewPanelBuilder().
			Title("Failed attempts").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`(sum(rate(bantay_probe_failures_total{%[1]s}[$__rate_interval])) or vector(0)) / sum(rate(bantay_probe_attempts_total{%[1]s}[$__rate_interval]))`, sel), "")).
			Unit("percentunit").
			Decimals(2).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(0.01), "yellow"), step(cog.ToPtr(0.05), "red"))).
			ColorMode(common.BigValueColorModeValue).
			GraphMode(common.BigValueGraphModeArea).
			Height(5).
			Span(6)).
		WithPanel(statetimeline.NewPanelBuilder().
			Title("Uplink up (1) or stale (0)").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`(%s > bool 0) or on (probe, carrier, network_type) (0 * %s)`, fresh, seen1h), "{{probe}} {{carrier}} {{network_type}}")).
			Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
				Type: dashboard.MappingTypeValueToText,
				Options: map[string]dashboard.ValueMappingResult{
					"0": {Text: cog.ToPtr("stale"), Color: cog.ToPtr("red")},
					"1": {Text: cog.ToPtr("up"), Color: cog.ToPtr("green")},
				},
			}}}).
			MergeValues(true).
			ShowValue(common.VisibilityModeNever).
			Height(8).
			Span(24)).
		WithPanel(table.NewPanelBuilder().Footer(tableFooter()).
			Title("Last seen (seconds ago)").
			Description("Per probe uplink: seconds since its newest attempt sample. Uplinks silent for more than 5 minutes drop out of this table (Prometheus lookback); the stale count above still shows them for an hour.").
			Datasource(promDS()).
			WithTarget(promInstantTable(fmt.Sprintf(`time() - max by (%s) (timestamp(bantay_probe_attempts_total{%s}))`, uplinks, sel))).
			Unit("s").
			Decimals(0).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(30.0), "red"))).
			Height(9).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Failures by reason").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`sum by (reason) (rate(bantay_probe_failures_total{%s}[$__rate_interval]))`, pathSel), "{{reason}}")).
			Unit("reqps").
			Height(9).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Loss by probe uplink").
			Datasource(promDS()).
			WithTarget(prom(lossExpr(uplinks, sel, "$__rate_interval"), "{{probe}} {{carrier}} {{network_type}}")).
			Unit("percentunit").
			Min(0).
			Height(9).
			Span(24)).
		WithRow(dashboard.NewRowBuilder("The probes themselves")).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Scheduling lateness, p99").
			Description("How much later than planned the probe started its runs. Tens of milliseconds mean a busy probe box, whose own delay shows up as latency and jitter.").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`histogram_quantile(0.99, sum by (%s, le) (rate(bantay_probe_schedule_lateness_seconds_bucket{%s}[$__rate_interval])))`, uplinks, sel), "{{probe}} {{carrier}} {{network_type}}")).
			Unit("s").
			Min(0).
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Rounds in flight").
			Description("Rounds being taken at the moment of each export, per probe uplink: about the number of targets whose round window covers that moment.").
			Datasource(promDS()).
			WithTarget(prom(fmt.Sprintf(`max by (%s) (bantay_probe_rounds_in_flight{%s})`, uplinks, sel), "{{probe}} {{carrier}} {{network_type}}")).
			Unit("short").
			Min(0).
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Probe CPU").
			Description("CPU time the probe process uses per second (1 = one core). Sent on the probe's first uplink only.").
			Datasource(promDS()).
			WithTarget(prom(`max by (probe) (rate(process_cpu_time_seconds_total{job="bantay-probe", src_city=~"$src_city"}[$__rate_interval]))`, "{{probe}}")).
			Unit("percentunit").
			Min(0).
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Probe memory (resident)").
			Datasource(promDS()).
			WithTarget(prom(`max by (probe) (process_memory_usage_bytes{job="bantay-probe", src_city=~"$src_city"})`, "{{probe}}")).
			Unit("bytes").
			Min(0).
			Height(8).
			Span(12)).
		WithPanel(table.NewPanelBuilder().Footer(tableFooter()).
			Title("TLS certificates of https targets (days left)").
			Description("Earliest certificate expiry in each https target's chain, as its probes last saw it; the soonest over probes and uplinks. BantayTLSCertificateExpiring alerts under 14 days.").
			Datasource(promDS()).
			WithTarget(promInstantTable(`(min by (target, dst_city) (bantay_probe_tls_cert_expiry_seconds{src_city=~"$src_city"}) - time()) / 86400`)).
			Unit("d").
			Decimals(1).
			Thresholds(thresholds(step(nil, "red"), step(cog.ToPtr(14.0), "yellow"), step(cog.ToPtr(30.0), "green"))).
			Height(8).
			Span(12)).
		WithPanel(table.NewPanelBuilder().Footer(tableFooter()).
			Title("HTTP status of http targets").
			Description("The status of each http target's last answer, per probe uplink (also when it was not the expected one).").
			Datasource(promDS()).
			WithTarget(promInstantTable(fmt.Sprintf(`max by (target, %s) (bantay_probe_http_status_code{%s})`, uplinks, sel))).
			Unit("none").
			Decimals(0).
			Height(8).
			Span(12)).
		WithRow(dashboard.NewRowBuilder("Events")).
		WithPanel(eventsPanel("Probe events", `{service="bantay", kind=~"probe_failure|probe_rejected|path_stale|path_back", src_city=~"$src_city", carrier=~"$carrier"}`))
}

func collectorHealthDashboard() *dashboard.DashboardBuilder {
	inst := `instance=~"$instance"`
	return base("bantay-collector-health", "Bantay / Collector health",
		"The collector's own telemetry: ingest, rejected points and writes, the TSDB head, rule evaluation.").
		Variables([]cog.Builder[dashboard.VariableModel]{
			datasourceVar(),
			lokiVar(),
			labelVar("instance", "Collector", "bantay_store_appended_samples_total", true),
		}).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Ingest rate (samples appended / s)").
			Datasource(promDS()).
			WithTarget(prom(`sum by (instance) (rate(bantay_store_appended_samples_total{`+inst+`}[$__rate_interval]))`, "{{instance}}")).
			Unit("short").
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("TSDB head series").
			Datasource(promDS()).
			WithTarget(prom(`max by (instance) (prometheus_tsdb_head_series{`+inst+`})`, "{{instance}}")).
			Unit("short").
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Points rejected by citytag, by reason").
			Description("Points the collector could not place (unknown probe, unregistered uplink, unknown city) or that carried impossible values. See the BantayCollectorRejectingPoints runbook.").
			Datasource(promDS()).
			WithTarget(prom(`sum by (reason) (rate(bantay_citytag_rejected_points{`+inst+`}[$__rate_interval]))`, "{{reason}}")).
			Unit("short").
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Writes refused by the store, by reason").
			Description("Whole OTLP requests refused (overloaded and commit_failed are retried by the probe, invalid is not) and single samples the TSDB refused inside stored requests (out_of_order, too_old, duplicate_conflict; lost). See the BantayStoreRejectingWrites and BantayStoreRejectingSamples runbooks.").
			Datasource(promDS()).
			WithTarget(prom(`sum by (reason) (rate(bantay_store_rejected_requests_total{`+inst+`}[$__rate_interval]))`, "requests: {{reason}}")).
			WithTarget(prom(`sum by (reason) (rate(bantay_store_rejected_samples_total{`+inst+`}[$__rate_interval]))`, "samples: {{reason}}")).
			Unit("short").
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Store writable (1) and failed WAL commits, by cause").
			Description("0 after a WAL commit failed (no_space: the disk is full): the store refuses every write, retryably, and is not ready until it has room and has repaired its WAL by itself. A store that cannot write cannot record its own 0 either: on Bantay's own data the line then stops. See the BantayStoreNotWritable runbook.").
			Datasource(promDS()).
			WithTarget(prom(`min by (instance) (bantay_store_writable{`+inst+`})`, "writable: {{instance}}")).
			WithTarget(prom(`sum by (cause) (increase(bantay_store_commit_failures_total{`+inst+`}[$__rate_interval]))`, "failed commits: {{cause}}")).
			Unit("short").
			Min(0).
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("WAL commit time (p99) and share of time spent committing").
			Description("Every acknowledgement waits for its commit to the write-ahead log, and commits are written one at a time. A healthy disk commits in about a millisecond; a slow one shows here first, before the store refuses requests for overload (append slots all busy). The share is what the BantayStoreWALSlow alert watches. See its runbook.").
			Datasource(promDS()).
			WithTarget(prom(`histogram_quantile(0.99, sum by (instance, le) (rate(bantay_store_commit_duration_seconds_bucket{`+inst+`}[$__rate_interval])))`, "p99 commit: {{instance}}")).
			WithTarget(prom(`sum by (instance) (rate(bantay_store_commit_duration_seconds_sum{`+inst+`}[$__rate_interval]))`, "share committing: {{instance}}")).
			Unit("s").
			Min(0).
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Rule group evaluation time").
			Datasource(promDS()).
			WithTarget(prom(`max by (rule_group) (prometheus_rule_group_last_duration_seconds{`+inst+`})`, "{{rule_group}}")).
			Unit("s").
			Height(8).
			Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Rule evaluation failures / s").
			Datasource(promDS()).
			WithTarget(prom(`sum by (rule_group) (rate(prometheus_rule_evaluation_failures_total{`+inst+`}[$__rate_interval]))`, "{{rule_group}}")).
			Unit("short").
			Height(8).
			Span(12)).
		WithRow(dashboard.NewRowBuilder("Events")).
		WithPanel(eventsPanel("Collector events", `{service="bantay", kind=~"probe_rejected|rules_reloaded|events_suppressed"}`))
}

// generated is every dashboard, by file name under grafana/.
func generated() map[string]*dashboard.DashboardBuilder {
	return map[string]*dashboard.DashboardBuilder{
		"latency-heatmap.json":    latencyHeatmapDashboard(),
		"city-matrix.json":        cityMatrixDashboard(),
		"carrier-comparison.json": carrierComparisonDashboard(),
		"probe-health.json":       probeHealthDashboard(),
		"collector-health.json":   collectorHealthDashboard(),
	}
}
