package promtest

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// LatencyBucketBounds are the network.latency histogram bounds in ms, from
// docs/metric-model.md.
var LatencyBucketBounds = metricmodel.LatencyBounds

// DemoPath is one measured route of the synthetic data set.
type DemoPath struct {
	Probe, SrcCity, Region, IslandGroup        string
	DstCity, DstRegion, DstIslandGroup, Target string
	Carrier, NetworkType                       string
	BaseMS                                     float64 // typical latency
	LossEvery                                  int     // one failed attempt in this many (0: none)
}

// DemoPaths are the paths DemoSeries writes: intra- and inter-island, two
// carriers, two probes.
var DemoPaths = []DemoPath{
	{"mnl-01", "Manila", "NCR", "Luzon", "Baguio", "CAR", "Luzon", "bgo-01.bantay.ph:7", "Globe", "5g", 9, 0},
	{"mnl-01", "Manila", "NCR", "Luzon", "Davao", "Davao Region", "Mindanao", "dvo-01.bantay.ph:7", "Globe", "5g", 42, 40},
	{"mnl-01", "Manila", "NCR", "Luzon", "Cebu", "Central Visayas", "Visayas", "ceb-01.bantay.ph:7", "Smart", "4g", 31, 25},
	{"dvo-01", "Davao", "Davao Region", "Mindanao", "Manila", "NCR", "Luzon", "mnl-01.bantay.ph:7", "Smart", "4g", 47, 30},
	{"dvo-01", "Davao", "Davao Region", "Mindanao", "Cebu", "Central Visayas", "Visayas", "ceb-01.bantay.ph:7", "Smart", "4g", 24, 0},
}

// DemoCollectorInstance is the instance label of the synthetic collector
// self-telemetry.
const DemoCollectorInstance = "127.0.0.1:8888"

// DemoSeries synthesises points of the Bantay metric model as they look in
// the store (after citytag) for DemoPaths, plus the collector's own
// telemetry, every 15 s for n steps ending at end. Values come from a fixed
// seed, so two calls with the same arguments give the same data — the same
// input for Prometheus and for Bantay in a differential test.
func DemoSeries(end time.Time, n int) []Series {
	const interval = 15 * time.Second
	const perStep = 4 // probe attempts per step and path
	rng := rand.New(rand.NewPCG(1, 2))
	start := end.Add(-time.Duration(n-1) * interval)
	var out []Series
	for _, p := range DemoPaths {
		base := map[string]string{
			"job": "bantay-probe", "instance": p.Probe, "probe": p.Probe,
			"src_city": p.SrcCity, "region": p.Region, "island_group": p.IslandGroup,
			"dst_city": p.DstCity, "dst_region": p.DstRegion, "dst_island_group": p.DstIslandGroup,
			"carrier": p.Carrier, "network_type": p.NetworkType, "target": p.Target, "method": "udp",
		}
		with := func(kv ...string) map[string]string {
			m := make(map[string]string, len(base)+len(kv)/2)
			for k, v := range base {
				m[k] = v
			}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		buckets := make([]float64, len(LatencyBucketBounds)+1) // last: +Inf
		var count, sum, attempts, attempt float64
		failures := map[string]float64{}
		bucketSeries := make([]Series, len(buckets))
		for i := range buckets {
			le := "+Inf"
			if i < len(LatencyBucketBounds) {
				le = strconv.FormatFloat(LatencyBucketBounds[i], 'f', -1, 64)
			}
			bucketSeries[i].Labels = with("__name__", "network_latency_milliseconds_bucket", "le", le)
		}
		countS := Series{Labels: with("__name__", "network_latency_milliseconds_count")}
		sumS := Series{Labels: with("__name__", "network_latency_milliseconds_sum")}
		attemptsS := Series{Labels: with("__name__", "bantay_probe_attempts_total")}
		// Each step's attempts are one round: the differences of its
		// consecutive answers are its jitter.
		jitterS := Series{Labels: with("__name__", "bantay_probe_jitter_milliseconds_total")}
		pairsS := Series{Labels: with("__name__", "bantay_probe_jitter_pairs_total")}
		var jitter, pairs float64
		failS := map[string]*Series{}
		for step := range n {
			t := start.Add(time.Duration(step) * interval)
			last := 0.0 // the round's previous answer
			for range perStep {
				attempt++
				attempts++
				if p.LossEvery > 0 && int(attempt)%p.LossEvery == 0 {
					reason := "timeout"
					if int(attempt)%(2*p.LossEvery) == 0 {
						reason = "refused"
					}
					failures[reason]++
					continue
				}
				ms := p.BaseMS * (0.8 + 0.5*rng.Float64())
				count++
				sum += ms
				if last > 0 {
					jitter, pairs = jitter+math.Abs(ms-last), pairs+1
				}
				last = ms
				for i, b := range LatencyBucketBounds {
					if ms <= b {
						buckets[i]++
					}
				}
				buckets[len(LatencyBucketBounds)]++
			}
			for i := range buckets {
				bucketSeries[i].Samples = append(bucketSeries[i].Samples, Sample{t, buckets[i]})
			}
			countS.Samples = append(countS.Samples, Sample{t, count})
			sumS.Samples = append(sumS.Samples, Sample{t, sum})
			attemptsS.Samples = append(attemptsS.Samples, Sample{t, attempts})
			jitterS.Samples = append(jitterS.Samples, Sample{t, jitter})
			pairsS.Samples = append(pairsS.Samples, Sample{t, pairs})
			// A failure counter appears with its first failure, as an OTel
			// SDK counter with a new attribute set does.
			for reason, v := range failures {
				s, ok := failS[reason]
				if !ok {
					s = &Series{Labels: with("__name__", "bantay_probe_failures_total", "reason", reason)}
					failS[reason] = s
				}
				s.Samples = append(s.Samples, Sample{t, v})
			}
		}
		out = append(out, bucketSeries...)
		out = append(out, countS, sumS, attemptsS, jitterS, pairsS)
		for _, s := range failS {
			out = append(out, *s)
		}
	}
	out = append(out, demoProbeSeries(start, interval, n)...)
	return append(out, demoCollectorSeries(start, interval, n)...)
}

// demoProbeSeries are what the demo's probes say about themselves and
// their https target: scheduling lateness, rounds in flight, CPU and
// memory (on the first uplink), and the target's status, certificate
// expiry and connect phase beside its total latency.
func demoProbeSeries(start time.Time, interval time.Duration, n int) []Series {
	var out []Series
	for _, u := range []struct{ probe, city, region, island, carrier, nt string }{
		{"mnl-01", "Manila", "NCR", "Luzon", "Globe", "5g"},
		{"dvo-01", "Davao", "Davao Region", "Mindanao", "Smart", "4g"},
	} {
		labels := func(name string, kv ...string) map[string]string {
			l := map[string]string{"__name__": name, "job": "bantay-probe", "instance": u.probe, "probe": u.probe,
				"src_city": u.city, "region": u.region, "island_group": u.island, "dst_city": u.city,
				"dst_region": u.region, "dst_island_group": u.island, "carrier": u.carrier, "network_type": u.nt}
			for i := 0; i+1 < len(kv); i += 2 {
				l[kv[i]] = kv[i+1]
			}
			return l
		}
		web := func(name string, kv ...string) map[string]string {
			return labels(name, append([]string{"target", "web-" + u.probe, "method", "http"}, kv...)...)
		}
		lateness := []Series{}
		for _, le := range []string{"0.001", "0.005", "0.025", "0.1", "0.5", "2.5", "+Inf"} {
			lateness = append(lateness, Series{Labels: labels("bantay_probe_schedule_lateness_seconds_bucket", "le", le)})
		}
		phase := []Series{}
		for _, le := range []string{"1", "2", "+Inf"} {
			phase = append(phase, Series{Labels: web("network_latency_milliseconds_bucket", "phase", "connect", "le", le)})
		}
		gauges := []Series{
			{Labels: labels("bantay_probe_rounds_in_flight")},
			{Labels: labels("process_cpu_time_seconds_total")},
			{Labels: labels("process_memory_usage_bytes")},
			{Labels: web("bantay_probe_http_status_code")},
			{Labels: web("bantay_probe_tls_cert_expiry_seconds")},
		}
		for step := range n {
			t := start.Add(time.Duration(step) * interval)
			f := float64(step)
			// Runs start within 1 ms but one in four, up to 5 ms late.
			late := []float64{3 * f, 4 * f, 4 * f, 4 * f, 4 * f, 4 * f, 4 * f}
			for i := range lateness {
				lateness[i].Samples = append(lateness[i].Samples, Sample{t, late[i]})
			}
			for i := range phase {
				phase[i].Samples = append(phase[i].Samples, Sample{t, []float64{f, 2 * f, 2 * f}[i]})
			}
			vals := []float64{float64(step % 3), 0.02 * f, 24 << 20, 200, float64(start.Unix()) + 40*86400}
			for i := range gauges {
				gauges[i].Samples = append(gauges[i].Samples, Sample{t, vals[i]})
			}
		}
		out = append(append(append(out, lateness...), phase...), gauges...)
	}
	return out
}

func demoCollectorSeries(start time.Time, interval time.Duration, n int) []Series {
	self := func(name string, kv ...string) Series {
		l := map[string]string{"__name__": name, "job": "bantay-collector", "instance": DemoCollectorInstance}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return Series{Labels: l}
	}
	group := "/etc/bantay/rules/bantay-recording.yml;bantay-paths"
	ss := []Series{
		self("bantay_store_appended_samples_total"),
		self("bantay_citytag_rejected_points", "reason", "unknown_probe"),
		self("bantay_store_rejected_requests_total", "reason", "overloaded"),
		self("prometheus_tsdb_head_series"),
		self("prometheus_rule_evaluation_failures_total", "rule_group", group),
		self("prometheus_rule_group_last_duration_seconds", "rule_group", group),
		self("bantay_store_rejected_samples_total", "reason", "too_old"),
		self("bantay_store_writable"),
		self("bantay_store_commit_failures_total", "cause", "no_space"),
	}
	// WAL commits, one a second: nine in ten within 5 ms, the rest within 50 ms.
	commits := []Series{
		self("bantay_store_commit_duration_seconds_bucket", "le", "0.005"),
		self("bantay_store_commit_duration_seconds_bucket", "le", "0.05"),
		self("bantay_store_commit_duration_seconds_bucket", "le", "+Inf"),
		self("bantay_store_commit_duration_seconds_count"),
		self("bantay_store_commit_duration_seconds_sum"),
	}
	for step := range n {
		t := start.Add(time.Duration(step) * interval)
		f := float64(step)
		vals := []float64{f * 600, f * 2, float64(step / 4), 1200 + f, float64(step / 20), 0.004 + 0.0001*float64(step%5), float64(step / 10),
			1, 0}
		for i := range ss {
			ss[i].Samples = append(ss[i].Samples, Sample{t, vals[i]})
		}
		secs := f * interval.Seconds()
		for i, v := range []float64{0.9 * secs, secs, secs, secs, 0.006 * secs} {
			commits[i].Samples = append(commits[i].Samples, Sample{t, v})
		}
	}
	return append(ss, commits...)
}
