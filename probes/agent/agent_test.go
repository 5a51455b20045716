package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/reflector"
)

// receiver is a minimal OTLP/gRPC metrics endpoint that keeps every request.
type receiver struct {
	colmetricspb.UnimplementedMetricsServiceServer
	srv *grpc.Server

	mu       sync.Mutex
	reqs     []*colmetricspb.ExportMetricsServiceRequest
	auth     []string
	probeIDs []string
}

func startReceiver(t *testing.T, addr string) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{srv: grpc.NewServer()}
	colmetricspb.RegisterMetricsServiceServer(r.srv, r)
	go r.srv.Serve(l)
	t.Cleanup(r.srv.Stop)
	return r
}

func (r *receiver) Export(ctx context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	r.auth = append(r.auth, md.Get("authorization")...)
	r.probeIDs = append(r.probeIDs, md.Get("bantay-probe-id")...)
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

// latest returns the newest ResourceMetrics per uplink carrier.
func (r *receiver) latest() map[string]*metricspb.ResourceMetrics {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*metricspb.ResourceMetrics{}
	for _, req := range r.reqs {
		for _, rm := range req.ResourceMetrics {
			out[attrs(rm.Resource.Attributes)["bantay.uplink.carrier"]] = rm
		}
	}
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.GetStringValue()
	}
	return m
}

func metricsByName(rm *metricspb.ResourceMetrics) map[string]*metricspb.Metric {
	m := map[string]*metricspb.Metric{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			m[mt.Name] = mt
		}
	}
	return m
}

// sumFor is a counter's value for one target (and reason, if given).
func sumFor(m *metricspb.Metric, target, reason string) int64 {
	if m == nil {
		return 0
	}
	var n int64
	for _, dp := range m.GetSum().GetDataPoints() {
		a := attrs(dp.Attributes)
		if a["target"] == target && (reason == "" || a["reason"] == reason) {
			n += dp.GetAsInt()
		}
	}
	return n
}

// logRecorder keeps every log record, for asserting what was logged how often.
type logRecorder struct {
	mu   sync.Mutex
	msgs []logLine
}

type logLine struct {
	msg   string
	attrs map[string]any
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := logLine{msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.Any()
		return true
	})
	l.msgs = append(l.msgs, line)
	return nil
}

func (l *logRecorder) lines() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m.msg, prefix) {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startReflector(t *testing.T) string {
	t.Helper()
	r, err := reflector.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(context.Background())
	t.Cleanup(func() { r.Close() })
	return r.Addr().String()
}

func testConfig(t *testing.T, collector, reflectorAddr, closedAddr string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("agent-test.yaml", fmt.Appendf(nil, `
probe: {id: mnl-01, city: Metro Manila, environment: test}
collector:
  endpoint: %s
  tls: {insecure: true}
  token: s3cret
  export_interval: 100ms
  timeout: 1s
uplinks:
  - {name: globe-5g, carrier: Globe, network_type: NR, bind_address: 127.0.1.1}
  - {name: pldt-fiber, carrier: PLDT, network_type: fiber, bind_address: 127.0.1.2}
defaults: {interval: 50ms, timeout: 40ms}
targets:
  - {name: davao-reflector, dst_city: Davao City, method: udp, address: "%s", count: 3}
  - {name: baguio-tcp, dst_city: Baguio, method: tcp, address: "%s"}
`, collector, reflectorAddr, closedAddr))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runAgent(t *testing.T, cfg *config.Config, logger *slog.Logger) (cancel func() error) {
	t.Helper()
	a, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	cancel = func() error {
		once.Do(func() {
			stop()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = fmt.Errorf("Run did not return within 10s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { cancel() })
	return cancel
}

// wantBuckets is copied from docs/metric-model.md, not from the code, so a
// change on either side fails here.
var wantBuckets = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}

func TestAgentExportsMetricModel(t *testing.T) {
	collector := testenv.FreeAddr(t)
	recv := startReceiver(t, collector)
	cfg := testConfig(t, collector, startReflector(t), testenv.FreeAddr(t))
	stop := runAgent(t, cfg, nil)

	ready := func() bool {
		l := recv.latest()
		for _, carrier := range []string{"Globe", "PLDT"} {
			rm, ok := l[carrier]
			if !ok {
				return false
			}
			m := metricsByName(rm)
			if sumFor(m[metricmodel.Attempts], "davao-reflector", "") < 3 || sumFor(m[metricmodel.Failures], "baguio-tcp", "refused") < 3 {
				return false
			}
		}
		return true
	}
	waitFor(t, "three runs of every target on both uplinks", 20*time.Second, ready)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	recv.mu.Lock()
	for _, a := range recv.auth {
		if a != "Bearer s3cret" {
			t.Errorf("authorization header %q, want Bearer s3cret", a)
		}
	}
	if len(recv.auth) == 0 {
		t.Error("no authorization header sent")
	}
	// The probe names itself, so that a collector refusing its token can
	// say which probe it was.
	if len(recv.probeIDs) != len(recv.reqs) || slices.ContainsFunc(recv.probeIDs, func(id string) bool { return id != "mnl-01" }) {
		t.Errorf("bantay-probe-id headers %v for %d requests, want mnl-01 on each", recv.probeIDs, len(recv.reqs))
	}
	recv.mu.Unlock()

	for carrier, network := range map[string]string{"Globe": "5g", "PLDT": "fiber"} {
		rm := recv.latest()[carrier]
		wantRes := map[string]string{
			"service.name":                "bantay-probe",
			"service.instance.id":         "mnl-01",
			"deployment.environment.name": "test",
			"bantay.probe.city":           "Manila",
			"bantay.uplink.carrier":       carrier,
			"bantay.uplink.network_type":  network,
		}
		if got := attrs(rm.Resource.Attributes); !mapsEqual(got, wantRes) {
			t.Errorf("resource %v, want exactly %v", got, wantRes)
		}
		if len(rm.ScopeMetrics) != 1 || rm.ScopeMetrics[0].Scope.Name != "github.com/bantay-noc/bantay/probes" {
			t.Errorf("scope metrics %v", rm.ScopeMetrics)
		}
		m := metricsByName(rm)

		lat := m["network.latency"]
		if lat == nil || lat.Unit != "ms" || lat.GetHistogram() == nil {
			t.Fatalf("network.latency = %v, want a histogram in ms", lat)
		}
		if lat.GetHistogram().AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("latency temporality %v", lat.GetHistogram().AggregationTemporality)
		}
		dps := lat.GetHistogram().DataPoints
		if len(dps) != 1 {
			t.Fatalf("latency points %d, want 1 (only the reflector ever succeeds)", len(dps))
		}
		dp := dps[0]
		if !slices.Equal(dp.ExplicitBounds, wantBuckets) {
			t.Errorf("bucket bounds %v", dp.ExplicitBounds)
		}
		if want := map[string]string{"target": "davao-reflector", "dst_city": "Davao", "method": "udp"}; !mapsEqual(attrs(dp.Attributes), want) {
			t.Errorf("latency point attributes %v, want %v", attrs(dp.Attributes), want)
		}
		if dp.Count == 0 || dp.GetSum() <= 0 || dp.GetMax() > 1000 {
			t.Errorf("latency point count %d sum %v max %v", dp.Count, dp.GetSum(), dp.GetMax())
		}

		for name, unit := range map[string]string{"bantay.probe.attempts": "{attempt}", "bantay.probe.failures": "{failure}"} {
			c := m[name]
			if c == nil || c.Unit != unit || c.GetSum() == nil || !c.GetSum().IsMonotonic ||
				c.GetSum().AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
				t.Fatalf("%s = %v, want a cumulative monotonic sum in %s", name, c, unit)
			}
		}
		// Point attributes: exactly target, dst_city, method (and reason on
		// failures), consistent with the target. A loaded machine may time
		// out a run now and then, so other reasons may appear; the closed
		// port must show up as refused.
		targets := map[string]map[string]string{
			"davao-reflector": {"target": "davao-reflector", "dst_city": "Davao", "method": "udp"},
			"baguio-tcp":      {"target": "baguio-tcp", "dst_city": "Baguio", "method": "tcp"},
		}
		failures, attempts := m["bantay.probe.failures"], m["bantay.probe.attempts"]
		for _, dp := range failures.GetSum().DataPoints {
			a := attrs(dp.Attributes)
			want := maps.Clone(targets[a["target"]])
			if want == nil {
				t.Fatalf("failure point for unknown target: %v", a)
			}
			want["reason"] = a["reason"]
			if !mapsEqual(a, want) || !slices.Contains([]string{"timeout", "refused", "dns", "tls", "http_status", "other"}, a["reason"]) {
				t.Errorf("failure point %v", a)
			}
		}
		// Every reason of every target is exported, at 0 until it happens,
		// so the first failure of a kind is an increase rate() can see.
		for target := range targets {
			for _, reason := range []string{"timeout", "refused", "dns", "tls", "http_status", "other"} {
				found := false
				for _, dp := range failures.GetSum().DataPoints {
					a := attrs(dp.Attributes)
					found = found || a["target"] == target && a["reason"] == reason
				}
				if !found {
					t.Errorf("no failures series for %s reason=%s before it ever happened", target, reason)
				}
			}
		}
		if sumFor(failures, "baguio-tcp", "refused") == 0 {
			t.Error("the closed port was never counted as refused")
		}
		for _, dp := range attempts.GetSum().DataPoints {
			if a := attrs(dp.Attributes); !mapsEqual(a, targets[a["target"]]) {
				t.Errorf("attempt point attributes %v", a)
			}
		}
		// Every probe is either a latency or a failure, never both or
		// neither; the reflector target takes rounds of 3, recorded whole.
		if lat, fail, all := int64(dp.Count), sumFor(failures, "davao-reflector", ""), sumFor(attempts, "davao-reflector", ""); lat+fail != all || all%3 != 0 {
			t.Errorf("udp: %d latencies + %d failures != %d attempts, or not whole rounds of 3", lat, fail, all)
		}
		if got, want := sumFor(failures, "baguio-tcp", ""), sumFor(attempts, "baguio-tcp", ""); got != want {
			t.Errorf("tcp: %d failures for %d attempts to a closed port", got, want)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOutage starts the agent with no collector, then brings the collector
// up: measurements taken during the outage arrive (the cumulative series
// started before the receiver existed), and the outage and the recovery are
// each logged exactly once however many exports failed.
func TestOutage(t *testing.T) {
	collector := testenv.FreeAddr(t)
	logs := &logRecorder{}
	cfg := testConfig(t, collector, startReflector(t), testenv.FreeAddr(t))
	cfg.Uplinks = cfg.Uplinks[:1]
	stop := runAgent(t, cfg, slog.New(logs))

	waitFor(t, "the outage to be logged", 10*time.Second, func() bool { return logs.count("collector unreachable") > 0 })
	// Let more exports fail (each takes about the 1s timeout, retries
	// included), so "logged once" means something.
	time.Sleep(1500 * time.Millisecond)
	upAt := time.Now()
	recv := startReceiver(t, collector)
	waitFor(t, "data after the collector came back", 20*time.Second, func() bool { return recv.count() > 0 })
	waitFor(t, "the recovery to be logged", 10*time.Second, func() bool { return logs.count("delivered again after ") > 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// The first outage: several exports failed, yet exactly one warning
	// came before the recovery line. (A loaded machine may later time out an
	// export and start a second, separately logged outage; that is correct
	// behaviour and not what this test is about.)
	var outage []logLine
	for _, l := range logs.lines() {
		if strings.HasPrefix(l.msg, "collector unreachable") || strings.HasPrefix(l.msg, "delivered again after ") {
			outage = append(outage, l)
		}
	}
	if len(outage) < 2 || !strings.HasPrefix(outage[0].msg, "collector unreachable") || !strings.HasPrefix(outage[1].msg, "delivered again after ") {
		t.Fatalf("outage log lines %v, want one warning then one recovery", outage)
	}
	if n, _ := outage[1].attrs["failed_exports"].(int64); n < 2 {
		t.Errorf("recovery line reports %v failed exports; the test needs several to show they were logged once", outage[1].attrs["failed_exports"])
	}
	recv.mu.Lock()
	first := recv.reqs[0]
	recv.mu.Unlock()
	m := metricsByName(first.ResourceMetrics[0])
	var sawOld bool
	for _, dp := range m["bantay.probe.attempts"].GetSum().GetDataPoints() {
		if time.Unix(0, int64(dp.StartTimeUnixNano)).Before(upAt) && dp.GetAsInt() > 0 {
			sawOld = true
		}
	}
	if !sawOld {
		t.Error("first delivery after the outage does not carry the attempts counted during it")
	}
}

// TestShutdownReportsUndelivered: stopping while the collector is down
// returns an error, because the last measurements were not delivered.
func TestShutdownReportsUndelivered(t *testing.T) {
	cfg := testConfig(t, testenv.FreeAddr(t), startReflector(t), testenv.FreeAddr(t))
	cfg.Collector.Timeout = 200 * time.Millisecond
	logs := &logRecorder{}
	stop := runAgent(t, cfg, slog.New(logs))
	waitFor(t, "the outage to be logged", 10*time.Second, func() bool { return logs.count("collector unreachable") > 0 })
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "not delivered") {
		t.Fatalf("Run returned %v, want an undelivered error", err)
	}
}

// gaugeFor is a gauge's value for one target.
func gaugeFor(m *metricspb.Metric, target string) (float64, bool) {
	for _, dp := range m.GetGauge().GetDataPoints() {
		if attrs(dp.Attributes)["target"] == target {
			if _, ok := dp.Value.(*metricspb.NumberDataPoint_AsInt); ok {
				return float64(dp.GetAsInt()), true
			}
			return dp.GetAsDouble(), true
		}
	}
	return 0, false
}

// TestAgentExportsRoundsPhasesAndHealth runs the agent against a real
// reflector and a real https server: rounds export their jitter pairs and
// the reordering and duplicate counters, http answers their phases (beside
// the total, which has no phase), status and certificate expiry, and the
// probe its scheduling lateness, rounds in flight, CPU and memory.
func TestAgentExportsRoundsPhasesAndHealth(t *testing.T) {
	web := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer web.Close()
	collector := testenv.FreeAddr(t)
	recv := startReceiver(t, collector)
	cfg, err := config.Parse("agent-test.yaml", fmt.Appendf(nil, `
probe: {id: mnl-01, city: Manila}
collector: {endpoint: %s, tls: {insecure: true}, export_interval: 100ms, timeout: 1s}
uplinks:
  - {name: globe-5g, carrier: Globe, network_type: 5g, bind_address: 127.0.1.1}
defaults: {interval: 200ms, timeout: 100ms}
targets:
  - {name: davao-reflector, dst_city: Davao, method: udp, address: "%s"}
  - {name: manila-web, dst_city: Manila, method: http, address: "%s", insecure_skip_verify: true}
`, collector, startReflector(t), web.URL))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Targets[0].Count != 5 {
		t.Fatalf("udp target count %d, want the default 5", cfg.Targets[0].Count)
	}
	stop := runAgent(t, cfg, nil)
	m := func() map[string]*metricspb.Metric {
		rm := recv.latest()["Globe"]
		if rm == nil {
			return nil
		}
		return metricsByName(rm)
	}
	waitFor(t, "two answered rounds of both targets", 20*time.Second, func() bool {
		got := m()
		_, status := gaugeFor(got[metricmodel.HTTPStatus], "manila-web")
		return got != nil && sumFor(got[metricmodel.JitterPairs], "davao-reflector", "") >= 8 && status
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := m()

	// Counters exist for every target (at 0 where nothing happened).
	for _, name := range []string{metricmodel.Duplicates, metricmodel.Reordered, metricmodel.Jitter, metricmodel.JitterPairs} {
		for _, target := range []string{"davao-reflector", "manila-web"} {
			found := false
			for _, dp := range got[name].GetSum().GetDataPoints() {
				found = found || attrs(dp.Attributes)["target"] == target
			}
			if !found {
				t.Errorf("no %s series for %s", name, target)
			}
		}
	}
	if got[metricmodel.Jitter].Unit != "ms" || got[metricmodel.Jitter].GetSum().GetDataPoints()[0].GetAsDouble() < 0 {
		t.Errorf("jitter %v, want a sum in ms", got[metricmodel.Jitter])
	}
	if n := sumFor(got[metricmodel.JitterPairs], "manila-web", ""); n != 0 {
		t.Errorf("%d jitter pairs from rounds of one http probe", n)
	}

	// Latency: the total without a phase, and every phase an http request
	// over TLS to an IP address goes through, each once per answer.
	counts := map[string]uint64{}
	for _, dp := range got[metricmodel.Latency].GetHistogram().GetDataPoints() {
		a := attrs(dp.Attributes)
		counts[a["target"]+"/"+a["phase"]] = dp.Count
	}
	total := counts["manila-web/"]
	if total == 0 {
		t.Fatalf("no http total latency; latency points %v", counts)
	}
	for _, ph := range []string{"connect", "tls", "processing", "transfer"} {
		if counts["manila-web/"+ph] != total {
			t.Errorf("phase %s: %d samples for %d answers (%v)", ph, counts["manila-web/"+ph], total, counts)
		}
	}
	if _, ok := counts["manila-web/dns"]; ok {
		t.Error("a dns phase for a URL with an IP address")
	}
	if len(counts) != 6 {
		t.Errorf("latency series %v, want the udp total, the http total and four http phases", counts)
	}

	if v, _ := gaugeFor(got[metricmodel.HTTPStatus], "manila-web"); v != 200 {
		t.Errorf("status code %v, want 200", v)
	}
	want := float64(web.Certificate().NotAfter.Unix())
	if v, ok := gaugeFor(got[metricmodel.CertExpiry], "manila-web"); !ok || v != want || got[metricmodel.CertExpiry].Unit != "s" {
		t.Errorf("certificate expiry %v (%v), want %v s", v, ok, want)
	}
	if _, ok := gaugeFor(got[metricmodel.HTTPStatus], "davao-reflector"); ok {
		t.Error("a status code for a udp target")
	}

	// The probe's health.
	// Every run's start is recorded before its round: at least as many as
	// the rounds this export counted (udp rounds of 5, http of 1).
	rounds := sumFor(got[metricmodel.Attempts], "davao-reflector", "")/5 + sumFor(got[metricmodel.Attempts], "manila-web", "")
	late := got[metricmodel.Lateness].GetHistogram().GetDataPoints()
	if len(late) != 1 || late[0].Count < uint64(rounds) || rounds < 3 || attrs(late[0].Attributes)["dst_city"] != "Manila" {
		t.Errorf("lateness %v for %d rounds, want one histogram of every run's start, dst_city Manila", late, rounds)
	}
	if dps := got[metricmodel.RoundsInFlight].GetSum().GetDataPoints(); len(dps) != 1 || dps[0].GetAsInt() < 0 || dps[0].GetAsInt() > 2 || got[metricmodel.RoundsInFlight].GetSum().IsMonotonic {
		t.Errorf("rounds in flight %v, want one non-monotonic sum between 0 and the 2 targets", dps)
	}
	if dps := got[metricmodel.ProcessCPU].GetSum().GetDataPoints(); len(dps) != 1 || dps[0].GetAsDouble() <= 0 {
		t.Errorf("process CPU %v", dps)
	}
	if v, ok := gaugeFor(got[metricmodel.ProcessMemory], ""); !ok || v < 1<<20 {
		t.Errorf("process memory %v (%v), want at least 1 MiB", v, ok)
	}
}
