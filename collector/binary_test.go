package collector_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// collectorBinary is bantay-collector, built once per test run.
func collectorBinary(t *testing.T) string {
	return testenv.Command(t, "github.com/bantay-noc/bantay/collector/cmd/bantay-collector")
}

// instance is one collector configuration: ports and data dir survive restarts.
type instance struct {
	t        *testing.T
	config   string
	httpAddr string // the bantay extension: Prometheus API, /-/ready
	grpcAddr string // OTLP/gRPC
	otlpHTTP string // OTLP/HTTP
	selfAddr string // the collector's own telemetry (Prometheus text format)
	logs     []*syncWriter
}

func newInstance(t *testing.T, storage string, processors ...string) *instance {
	t.Helper()
	return newInstanceAt(t, filepath.Join(t.TempDir(), "data"), storage, processors...)
}

// newInstanceAt is newInstance with its data directory at data.
func newInstanceAt(t *testing.T, data, storage string, processors ...string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, httpAddr: testenv.FreeAddr(t), grpcAddr: testenv.FreeAddr(t), otlpHTTP: testenv.FreeAddr(t), selfAddr: testenv.FreeAddr(t)}
	selfHost, selfPort, _ := strings.Cut(in.selfAddr, ":")
	processors = append([]string{"citytag"}, processors...)
	cfg := fmt.Sprintf(`
extensions:
  bantay:
    endpoint: %s
    storage:
      path: %s
%s
  refusals: {}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
        middlewares: [{id: refusals}]
      http:
        endpoint: %s
        middlewares: [{id: refusals}]
processors:
  citytag:
    probes:
      load-01:
        city: Manila
        uplinks: [{carrier: Globe, network_type: 5g}]
    # otlpload gives every point its own target, so that each acknowledged
    # point can be looked up afterwards: far more series than any probe has.
    limits: {max_series_per_probe: 0}
  delta_to_cumulative: {}
exporters:
  tsdb: {}
service:
  extensions: [bantay, refusals]
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [%s]
      exporters: [tsdb]
  telemetry:
    logs: {level: warn}
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: %s, port: %s}}}
`, in.httpAddr, data, storage, in.grpcAddr, in.otlpHTTP, strings.Join(processors, ", "), selfHost, selfPort)
	in.config = filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(in.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// start runs the real binary and waits (bounded) until it serves.
func (in *instance) start() *exec.Cmd {
	in.t.Helper()
	log := &syncWriter{b: &strings.Builder{}}
	in.logs = append(in.logs, log)
	cmd := exec.Command(collectorBinary(in.t), "--config", in.config)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + in.httpAddr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.t.Fatalf("collector not ready after 60s:\n%s", log)
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (in *instance) load() otlpload.Options {
	return otlpload.Options{
		Endpoint: in.grpcAddr, Probe: "load-01", City: "Manila", Carrier: "Globe", NetworkType: "5g",
		DstCity: "Davao", Workers: 8, PointsPerRequest: 50, MaxRequests: 20000, Duration: 20 * time.Second,
	}
}

// storedTargets returns the target label of every stored latency series.
func (in *instance) storedTargets(ctx context.Context) map[string]bool {
	in.t.Helper()
	client := promtest.NewClient("http://" + in.httpAddr)
	series, err := client.Series(ctx, []string{`network_latency_milliseconds_count{target=~"load-.*"}`}, time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil {
		in.t.Fatal(err)
	}
	out := make(map[string]bool, len(series))
	for _, s := range series {
		out[string(s["target"])] = true
	}
	return out
}

// TestAcknowledgedPointsSurviveSIGKILL loads the real collector binary,
// kills it with SIGKILL mid-load, restarts it on the same data directory and
// checks that every point it acknowledged is queryable.
func TestAcknowledgedPointsSurviveSIGKILL(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	in := newInstance(t, "")
	cmd := in.start()
	ctx := context.Background()

	loadDone := make(chan otlpload.Result, 1)
	go func() {
		res, err := otlpload.Run(ctx, in.load())
		if err != nil {
			t.Error(err)
		}
		loadDone <- res
	}()
	// Kill once a good amount has been acknowledged (bounded wait).
	time.Sleep(3 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	res := <-loadDone
	if len(res.Acked) == 0 {
		t.Fatalf("nothing was acknowledged before the kill (refusals %v):\n%s", res.Refused, in.logs[0])
	}
	t.Logf("acknowledged %d points in %d requests before SIGKILL; answers after: %v", len(res.Acked), res.Requests, res.Refused)

	in.start()
	stored := in.storedTargets(ctx)
	missing := 0
	for _, target := range res.Acked {
		if !stored[target] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged points are not stored after SIGKILL and restart", missing, len(res.Acked))
	}
}

// TestOverloadIsRefusedRetryablyAndNothingAckedIsLost squeezes the store to
// one append slot with no wait and sends concurrent load: some requests must
// be refused with RESOURCE_EXHAUSTED (retryable), and every acknowledged
// point must be stored.
func TestOverloadIsRefusedRetryablyAndNothingAckedIsLost(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	in := newInstance(t, "      max_concurrent_appends: 1\n      append_wait: 0s")
	in.start()
	ctx := context.Background()
	o := in.load()
	o.Workers, o.MaxRequests, o.Duration = 16, 600, 20*time.Second
	res, err := otlpload.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests: %d points acknowledged, refusals %v", res.Requests, len(res.Acked), res.Refused)
	if res.Refused[codes.ResourceExhausted] == 0 {
		t.Errorf("no RESOURCE_EXHAUSTED refusals under overload (refusals: %v)", res.Refused)
	}
	for code := range res.Refused {
		if code != codes.ResourceExhausted {
			t.Errorf("unexpected answer %v under overload: only retryable refusals are acceptable", code)
		}
	}
	stored := in.storedTargets(ctx)
	for _, target := range res.Acked {
		if !stored[target] {
			t.Fatalf("acknowledged point %s is not stored", target)
		}
	}
}

// TestFullDiskKeepsEveryAcknowledgedPoint runs the real collector on a data
// directory on a 30 MiB tmpfs and sends OTLP until the disk is full: the
// collector refuses with UNAVAILABLE (retryable) and is not ready; space is
// freed, it recovers by itself, more is acknowledged, and after a restart
// every acknowledged point is queryable. Before, the WAL repair at restart
// deleted everything written after the record the failed write tore.
func TestFullDiskKeepsEveryAcknowledgedPoint(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	dir := testenv.Tmpfs(t, "30m")
	in := newInstanceAt(t, filepath.Join(dir, "data"), "      recovery_interval: 100ms")
	cmd := in.start()
	ctx := context.Background()
	ready := func() int {
		resp, err := http.Get("http://" + in.httpAddr + "/-/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var acked []string
	run := func(requests int) otlpload.Result {
		o := in.load()
		o.Workers, o.MaxRequests, o.Duration = 4, requests, 30*time.Second
		res, err := otlpload.Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, res.Acked...)
		return res
	}

	if res := run(40); len(res.Refused) > 0 {
		t.Fatalf("refusals before the disk filled: %v", res.Refused)
	}
	free := testenv.FillDisk(t, dir, 1<<20)
	res := run(400)
	t.Logf("disk full: %d requests, %d points acknowledged, refusals %v", res.Requests, len(res.Acked), res.Refused)
	if res.Refused[codes.Unavailable] == 0 {
		t.Fatalf("no UNAVAILABLE refusal on a full disk (refusals %v):\n%s", res.Refused, in.logs[0])
	}
	for code := range res.Refused {
		if code != codes.Unavailable {
			t.Errorf("answer %v on a full disk: only the retryable UNAVAILABLE is acceptable", code)
		}
	}
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready answers %d while the store cannot write", code)
	}

	free()
	code := ready()
	for i := 0; i < 600 && code != http.StatusOK; i++ { // bounded by count
		time.Sleep(50 * time.Millisecond)
		code = ready()
	}
	if code != http.StatusOK {
		t.Fatalf("not ready after space was freed:\n%s", in.logs[0])
	}
	if res := run(40); len(res.Refused) > 0 {
		t.Fatalf("refusals after space was freed: %v", res.Refused)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	in.start()
	stored := in.storedTargets(ctx)
	missing := 0
	for _, target := range acked {
		if !stored[target] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged points are not stored after the full disk and a restart", missing, len(acked))
	}
	t.Logf("%d acknowledged points, all stored after the restart", len(acked))
}

// TestBadConfigExitsNamingFileAndField runs the binary with an invalid
// registry and checks the message an operator sees.
func TestBadConfigExitsNamingFileAndField(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	err := os.WriteFile(cfg, []byte(`
extensions:
  bantay: {endpoint: 127.0.0.1:0, storage: {path: `+t.TempDir()+`}}
receivers:
  otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}
processors:
  citytag:
    probes:
      x-01: {city: Atlantis, uplinks: [{carrier: Globe, network_type: 4g}]}
exporters:
  tsdb: {}
service:
  extensions: [bantay]
  pipelines:
    metrics: {receivers: [otlp], processors: [citytag], exporters: [tsdb]}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(collectorBinary(t), "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("collector accepted an invalid config:\n%s", out)
	}
	for _, want := range []string{"config " + cfg, "processors::citytag", "probes::x-01::city", `unknown city "Atlantis"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output lacks %q:\n%s", want, out)
		}
	}
}

// TestDeltaTemporalityIsStoredAsCumulative sends delta histograms through
// the distribution's pipeline (citytag → delta_to_cumulative → tsdb) and
// checks the store holds the running totals, as Prometheus's own OTLP
// endpoint does with its delta-to-cumulative conversion.
func TestDeltaTemporalityIsStoredAsCumulative(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	in := newInstance(t, "", "delta_to_cumulative")
	in.start()
	conn, err := grpc.NewClient(in.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)
	start := time.Now().Add(-time.Minute)
	var last time.Time
	for i, counts := range [][]uint64{{1, 2, 0}, {0, 3, 1}, {2, 0, 0}} {
		last = start.Add(time.Duration(i+1) * 10 * time.Second)
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		for k, v := range map[string]string{"service.name": "bantay-probe", "service.instance.id": "load-01", "bantay.uplink.carrier": "Globe", "bantay.uplink.network_type": "5g"} {
			rm.Resource().Attributes().PutStr(k, v)
		}
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("network.latency")
		m.SetUnit("ms")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := h.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("dst_city", "Davao")
		dp.Attributes().PutStr("target", "delta")
		dp.ExplicitBounds().FromRaw([]float64{10, 20})
		dp.BucketCounts().FromRaw(counts)
		dp.SetCount(counts[0] + counts[1] + counts[2])
		dp.SetSum(float64(dp.Count()) * 12)
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * 10 * time.Second)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(last))
		if _, err := client.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
	}
	res, err := promtest.NewClient("http://"+in.httpAddr).Query(context.Background(),
		`network_latency_milliseconds_bucket{target="delta"}`, last)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range vec {
		got[string(s.Metric["le"])] = float64(s.Value)
	}
	// Running totals: le=10: 1+0+2, le=20: +(2+3+0), +Inf: +(0+1+0).
	want := map[string]float64{"10": 3, "20": 8, "+Inf": 9}
	for le, w := range want {
		if got[le] != w {
			t.Errorf("le=%s: stored %v, want cumulative %v (all: %v)", le, got[le], w, got)
		}
	}
}

// TestSIGHUPReloadsRulesInPlace sends SIGHUP to the real binary, as a
// Prometheus operator does to reload rules: the rules reload, and nothing
// else restarts (a wall screen's websocket stays open and answers).
func TestSIGHUPReloadsRulesInPlace(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	in := newInstance(t, "")
	cmd := in.start()
	reloads := func() string {
		resp, err := http.Get("http://" + in.httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, `bantay_config_reloads_total{result="success"}`) {
				return strings.TrimSpace(line)
			}
		}
		return ""
	}
	before := reloads()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+in.httpAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, _, err := ws.ReadMessage(); err != nil { // the snapshot
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); reloads() == before; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rules not reloaded 30s after SIGHUP (%s):\n%s", before, in.logs[0])
		}
	}
	// The same connection still works: ask it for a pong.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":"after-hup"}`)); err != nil {
		t.Fatalf("websocket closed by SIGHUP: %v", err)
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("websocket closed by SIGHUP: %v\n%s", err, in.logs[0])
		}
		if strings.Contains(string(msg), `"after-hup"`) {
			break
		}
	}
	if log := in.logs[0].String(); strings.Contains(log, "restart service") {
		t.Errorf("SIGHUP restarted the collector's service:\n%s", log)
	}
}

// TestShippedConfigIsValid checks the production-shaped configuration the
// README points operators at, with the collector's own validator.
func TestShippedConfigIsValid(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	cmd := exec.Command(collectorBinary(t), "validate", "--config", "collector/config/bantay.yaml")
	cmd.Dir = ".." // the config's ${file:…} paths are relative to the repository root
	cmd.Env = append(os.Environ(), "BANTAY_DATA_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("collector/config/bantay.yaml is invalid: %v\n%s", err, out)
	}
}
