package lokiexporter

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/exporters/lokiexporter/internal/metadata"
)

// received is one push as a Loki server sees it.
type received struct {
	header http.Header
	path   string
	req    push.PushRequest
	tls    bool // arrived over TLS
}

// lokiSink is an HTTP server that decodes pushes with Loki's own types and
// answers with what respond says (204 by default).
type lokiSink struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, w http.ResponseWriter) // n counts requests from 1
	errs    []error
}

func newSink(t *testing.T) *lokiSink { return startSink(t, false) }

// newTLSSink is newSink over HTTPS, with httptest's self-signed
// certificate (sink.Certificate()).
func newTLSSink(t *testing.T) *lokiSink { return startSink(t, true) }

func startSink(t *testing.T, useTLS bool) *lokiSink {
	s := &lokiSink{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req push.PushRequest
		if err == nil {
			var raw []byte
			if raw, err = snappy.Decode(nil, body); err == nil {
				err = req.Unmarshal(raw)
			}
		}
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, err)
		}
		s.got = append(s.got, received{header: r.Header.Clone(), path: r.URL.Path, req: req, tls: r.TLS != nil})
		n, respond := len(s.got), s.respond
		s.mu.Unlock()
		if respond != nil {
			respond(n, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *lokiSink) requests(t *testing.T) []received {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		t.Errorf("server could not decode a push: %v", err)
	}
	return append([]received(nil), s.got...)
}

// entries flattens what was received into (labels, entry) pairs.
func (s *lokiSink) entries(t *testing.T) (labels []string, entries []push.Entry) {
	t.Helper()
	for _, r := range s.requests(t) {
		for _, st := range r.req.Streams {
			for _, e := range st.Entries {
				labels = append(labels, st.Labels)
				entries = append(entries, e)
			}
		}
	}
	return labels, entries
}

// testConfig is a config that answers synchronously (wait_for_result) so
// tests can assert right after ConsumeLogs, with fast retries. Validate
// refuses wait_for_result in production (producers would wait on Loki);
// it changes only when ConsumeLogs returns, not what is pushed.
func testConfig(endpoint string) *Config {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Endpoint = endpoint
	q := cfg.QueueConfig.Get()
	q.WaitForResult = true
	q.Batch = configoptional.None[exporterhelper.BatchConfig]()
	cfg.BackOffConfig.InitialInterval = 10 * time.Millisecond
	cfg.BackOffConfig.MaxInterval = 50 * time.Millisecond
	cfg.BackOffConfig.MaxElapsedTime = 10 * time.Second
	return cfg
}

// startExporter creates and starts the exporter through its factory;
// before applies changes (a fake clock) before Start, so that no goroutine
// of the exporter sees them change.
func startExporter(t *testing.T, cfg *Config, before ...func(*lokiExporter)) (exporter.Logs, *componenttest.Telemetry) {
	t.Helper()
	if err := cfg.Validate(); err != nil && !cfg.QueueConfig.Get().WaitForResult {
		t.Fatalf("config: %v", err)
	}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tt.NewTelemetrySettings()
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(exp.(*lokiExporter))
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	return exp, tt
}

// counter sums an int64 counter's points; 0 when it was never recorded.
func counter(t *testing.T, tt *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T, not an int64 sum", name, m.Data)
	}
	var n int64
	for _, dp := range sum.DataPoints {
		n += dp.Value
	}
	return n
}

func TestPushOnTheWire(t *testing.T) {
	sink := newSink(t)
	cfg := testConfig(sink.URL)
	cfg.TenantID = "noc-ph"
	cfg.BasicAuth = BasicAuthConfig{Username: "123456", Password: "glc_token"}
	cfg.Headers.Set("X-Extra", "yes")
	exp, _ := startExporter(t, cfg)

	ld, lrs := newLogs()
	event(lrs, t0.Add(time.Second), "probe_failure", "mnl-01", "Manila", "Globe", "timeout to 203.0.113.7:443")
	event(lrs, t0, "path_degraded", "", "Manila", "Globe", "Manila → Davao degraded")
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	reqs := sink.requests(t)
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.path != "/loki/api/v1/push" {
		t.Errorf("path %s", r.path)
	}
	for k, want := range map[string]string{
		"Content-Type":  "application/x-protobuf",
		"X-Scope-Orgid": "noc-ph",
		"Authorization": "Basic MTIzNDU2OmdsY190b2tlbg==",
		"X-Extra":       "yes",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if enc := r.header.Get("Content-Encoding"); enc != "" {
		t.Errorf("Content-Encoding %q: Loki's protocol sends snappy without it", enc)
	}
	// Two kinds, two streams, ordered by labels.
	if len(r.req.Streams) != 2 {
		t.Fatalf("%d streams: %+v", len(r.req.Streams), r.req.Streams)
	}
	if !strings.Contains(r.req.Streams[0].Labels, `kind="path_degraded"`) || !strings.Contains(r.req.Streams[1].Labels, `kind="probe_failure"`) {
		t.Errorf("streams %s / %s", r.req.Streams[0].Labels, r.req.Streams[1].Labels)
	}
	if e := r.req.Streams[1].Entries[0]; !e.Timestamp.Equal(t0.Add(time.Second)) || metaMap(e)["probe"] != "mnl-01" {
		t.Errorf("entry %+v", e)
	}
}

func TestBearerToken(t *testing.T) {
	sink := newSink(t)
	cfg := testConfig(sink.URL + "/custom/push")
	cfg.BearerToken = "tok"
	exp, _ := startExporter(t, cfg)
	ld, lrs := newLogs()
	event(lrs, t0, "rules_reloaded", "", "Manila", "Globe", "rules reloaded")
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	_ = exp.Shutdown(context.Background())
	r := sink.requests(t)[0]
	if r.header.Get("Authorization") != "Bearer tok" || r.path != "/custom/push" {
		t.Errorf("auth %q path %q", r.header.Get("Authorization"), r.path)
	}
}

// TestTLS pushes over HTTPS to a server whose certificate only the
// configured CA vouches for, with basic auth and a tenant, and checks that
// without that CA the push is refused by certificate verification before
// anything reaches the server.
func TestTLS(t *testing.T) {
	sink := newTLSSink(t)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sink.Certificate().Raw})
	if !strings.HasPrefix(sink.URL, "https://") {
		t.Fatalf("sink URL %s", sink.URL)
	}

	cfg := testConfig(sink.URL)
	cfg.TLS.CAPem = configopaque.String(caPEM)
	cfg.TenantID = "noc-ph"
	cfg.BasicAuth = BasicAuthConfig{Username: "123456", Password: "glc_token"}
	exp, _ := startExporter(t, cfg)
	ld, lrs := newLogs()
	event(lrs, t0, "path_stale", "", "Baguio", "Smart", "Baguio → Manila on Smart fiber stale")
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatalf("push over TLS with the CA configured: %v", err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := sink.requests(t)
	if len(reqs) != 1 || !reqs[0].tls {
		t.Fatalf("%d requests (tls %v), want one over TLS", len(reqs), len(reqs) == 1 && reqs[0].tls)
	}
	if h := reqs[0].header; h.Get("Authorization") != "Basic MTIzNDU2OmdsY190b2tlbg==" || h.Get("X-Scope-OrgID") != "noc-ph" {
		t.Errorf("headers over TLS: Authorization %q, X-Scope-OrgID %q", h.Get("Authorization"), h.Get("X-Scope-OrgID"))
	}
	if _, entries := sink.entries(t); len(entries) != 1 {
		t.Errorf("%d entries, want 1", len(entries))
	}

	// Without the CA the server's certificate is not trusted.
	untrusted := testConfig(sink.URL)
	tel, err := newTelemetry(exportertest.NewNopSettings(metadata.Type))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPusher(untrusted, exportertest.NewNopSettings(metadata.Type), tel)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	ld, lrs = newLogs()
	event(lrs, t0, "path_back", "", "Baguio", "Smart", "back")
	err = p.push(context.Background(), ld)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("push to an untrusted certificate: err = %v, want a certificate error", err)
	}
	if n := len(sink.requests(t)); n != 1 {
		t.Errorf("%d requests reached the server, want only the trusted one", n)
	}
}

func TestClassifyResponses(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		permanent  bool
		throttle   bool
	}{
		{http.StatusTooManyRequests, "", false, false},
		{http.StatusTooManyRequests, "7", false, true},
		{http.StatusInternalServerError, "", false, false},
		{http.StatusBadGateway, "", false, false},
		{http.StatusServiceUnavailable, "Wed, 25 Nov 2026 08:00:00 GMT", false, true},
		{http.StatusBadRequest, "", true, false},
		{http.StatusUnauthorized, "", true, false},
		{http.StatusForbidden, "", true, false},
		{http.StatusNotFound, "", true, false},
		{http.StatusRequestEntityTooLarge, "", true, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status)+tt.retryAfter, func(t *testing.T) {
			sink := newSink(t)
			sink.respond = func(_ int, w http.ResponseWriter) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "entry for stream has timestamp too old")
			}
			cfg := testConfig(sink.URL)
			tel, err := newTelemetry(exportertest.NewNopSettings(metadata.Type))
			if err != nil {
				t.Fatal(err)
			}
			p, err := newPusher(cfg, exportertest.NewNopSettings(metadata.Type), tel)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.start(context.Background(), componenttest.NewNopHost()); err != nil {
				t.Fatal(err)
			}
			ld, lrs := newLogs()
			event(lrs, t0, "probe_failure", "mnl-01", "Manila", "Globe", "x")
			err = p.push(context.Background(), ld)
			if err == nil {
				t.Fatal("refusal not reported")
			}
			if consumererror.IsPermanent(err) != tt.permanent {
				t.Errorf("permanent = %v, want %v: %v", consumererror.IsPermanent(err), tt.permanent, err)
			}
			if got := strings.HasPrefix(err.Error(), "Throttle ("); got != tt.throttle {
				t.Errorf("throttle = %v, want %v: %v", got, tt.throttle, err)
			}
			if !strings.Contains(err.Error(), "timestamp too old") {
				t.Errorf("response body missing from error: %v", err)
			}
		})
	}
	t.Run("network", func(t *testing.T) {
		sink := newSink(t)
		sink.Close() // connection refused from now on
		cfg := testConfig(sink.URL)
		tel, _ := newTelemetry(exportertest.NewNopSettings(metadata.Type))
		p, _ := newPusher(cfg, exportertest.NewNopSettings(metadata.Type), tel)
		_ = p.start(context.Background(), componenttest.NewNopHost())
		ld, lrs := newLogs()
		event(lrs, t0, "probe_failure", "mnl-01", "Manila", "Globe", "x")
		err := p.push(context.Background(), ld)
		if err == nil || consumererror.IsPermanent(err) {
			t.Fatalf("network error should be retryable, got %v", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 7, 59, 50, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"7": 7 * time.Second, "Wed, 25 Nov 2026 08:00:00 GMT": 10 * time.Second, "Wed, 25 Nov 2026 07:00:00 GMT": 0,
	} {
		if got, ok := retryAfter(in, now); !ok || got != want {
			t.Errorf("retryAfter(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "soon", "-3"} {
		if _, ok := retryAfter(bad, now); ok {
			t.Errorf("retryAfter(%q) accepted", bad)
		}
	}
}

func TestTransientErrorsAreRetriedPermanentOnesAreNot(t *testing.T) {
	t.Run("503 twice then accepted", func(t *testing.T) {
		sink := newSink(t)
		sink.respond = func(n int, w http.ResponseWriter) {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
		exp, tt := startExporter(t, testConfig(sink.URL))
		ld, lrs := newLogs()
		event(lrs, t0, "probe_failure", "mnl-01", "Manila", "Globe", "x")
		if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
			t.Fatalf("not delivered after retries: %v", err)
		}
		_ = exp.Shutdown(context.Background())
		if n := len(sink.requests(t)); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
		if n := counter(t, tt, "otelcol_exporter_sent_log_records"); n != 1 {
			t.Errorf("sent_log_records = %d, want 1", n)
		}
	})
	t.Run("400 dropped at once", func(t *testing.T) {
		sink := newSink(t)
		sink.respond = func(_ int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "error at least one label pair is required per stream")
		}
		exp, tt := startExporter(t, testConfig(sink.URL))
		ld, lrs := newLogs()
		event(lrs, t0, "probe_failure", "mnl-01", "Manila", "Globe", "x")
		err := exp.ConsumeLogs(context.Background(), ld)
		if err == nil || !strings.Contains(err.Error(), "at least one label pair") {
			t.Fatalf("err = %v, want the server's reason", err)
		}
		_ = exp.Shutdown(context.Background())
		if n := len(sink.requests(t)); n != 1 {
			t.Errorf("%d attempts, want 1 (permanent errors are not retried)", n)
		}
		if n := counter(t, tt, "bantay_loki_rejected_pushes"); n != 1 {
			t.Errorf("%s = %d, want 1", "bantay_loki_rejected_pushes", n)
		}
		if n := counter(t, tt, "otelcol_exporter_send_failed_log_records"); n != 1 {
			t.Errorf("send_failed_log_records = %d, want 1", n)
		}
	})
}

// fakeClock is the exporter's clock in rate-limit tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func lineOf(t *testing.T, e push.Entry) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.Line), &m); err != nil {
		t.Fatalf("line %q: %v", e.Line, err)
	}
	return m
}

func TestRateLimitSuppressesAndSummarises(t *testing.T) {
	sink := newSink(t)
	cfg := testConfig(sink.URL)
	cfg.RateLimit.Burst = 5
	cfg.RateLimit.EventsPerMinute = 6
	clock := &fakeClock{now: time.Now()}
	exp, tt := startExporter(t, cfg, func(e *lokiExporter) { e.now = clock.Now })

	ld, lrs := newLogs()
	for range 20 {
		event(lrs, clock.Now(), "path_degraded", "mnl-01", "Manila", "Globe", "flap")
	}
	event(lrs, clock.Now(), "probe_failure", "dvo-01", "Davao", "Smart", "quiet probe")
	event(lrs, clock.Now(), "rules_reloaded", "", "Manila", "Globe", "no probe: never limited")
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	if ld.LogRecordCount() != 22 {
		t.Fatalf("input batch modified: %d records", ld.LogRecordCount())
	}
	if _, entries := sink.entries(t); len(entries) != 7 {
		t.Fatalf("%d entries delivered, want 5 + 1 + 1", len(entries))
	}
	if n := counter(t, tt, "bantay_loki_suppressed_events"); n != 15 {
		t.Errorf("%s = %d, want 15", "bantay_loki_suppressed_events", n)
	}

	// Ten seconds later one token is back: the next event passes, right
	// after the summary of the 15, in the flapping probe's own stream.
	clock.Add(10 * time.Second)
	ld2, lrs2 := newLogs()
	event(lrs2, clock.Now(), "path_recovered", "mnl-01", "Manila", "Globe", "recovered")
	if err := exp.ConsumeLogs(context.Background(), ld2); err != nil {
		t.Fatal(err)
	}
	labels, entries := sink.entries(t)
	if len(entries) != 9 {
		t.Fatalf("%d entries, want 9", len(entries))
	}
	sum, next := lineOf(t, entries[7]), lineOf(t, entries[8])
	if sum["message"] != "15 events suppressed for probe mnl-01 in the last 10s" || sum["count"] != 15.0 || sum["event.kind"] != "events_suppressed" {
		t.Errorf("summary %v", sum)
	}
	if want := `{carrier="Globe", island_group="Luzon", kind="events_suppressed", service="bantay", src_city="Manila"}`; labels[7] != want {
		t.Errorf("summary labels %s, want %s", labels[7], want)
	}
	if next["message"] != "recovered" {
		t.Errorf("event after the summary: %v", next)
	}

	// A probe still flapping at shutdown gets its summary on the way out
	// (dvo-01 has its full burst of 5 again, so 3 of 8 are suppressed).
	ld3, lrs3 := newLogs()
	for range 8 {
		event(lrs3, clock.Now(), "probe_failure", "dvo-01", "Davao", "Smart", "flap")
	}
	if err := exp.ConsumeLogs(context.Background(), ld3); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, entries = sink.entries(t)
	last := lineOf(t, entries[len(entries)-1])
	if last["message"] != "3 events suppressed for probe dvo-01 in the last second" {
		t.Errorf("shutdown summary %v", last)
	}
}

func TestQueueOverflowIsCountedAndNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	sink := newSink(t)
	sink.respond = func(_ int, w http.ResponseWriter) {
		<-release // Loki hangs
		w.WriteHeader(http.StatusNoContent)
	}
	cfg := testConfig(sink.URL)
	q := cfg.QueueConfig.Get()
	q.WaitForResult = false
	q.QueueSize = 10
	q.NumConsumers = 1
	cfg.RateLimit.Enabled = false
	exp, tt := startExporter(t, cfg)

	accepted, refused := 0, 0
	for i := range 30 {
		ld, lrs := newLogs()
		event(lrs, t0.Add(time.Duration(i)*time.Millisecond), "probe_failure", "mnl-01", "Manila", "Globe", "x")
		// Returns at once whether or not there is room: a full queue is an
		// error for the caller to count, never a wait.
		switch err := exp.ConsumeLogs(context.Background(), ld); {
		case err == nil:
			accepted++
		case errors.Is(err, exporterhelper.ErrQueueIsFull):
			refused++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if accepted != 10 || refused != 20 {
		t.Errorf("accepted %d, refused %d; want the queue bound of 10 and 20 refused", accepted, refused)
	}
	if n := counter(t, tt, "otelcol_exporter_enqueue_failed_log_records"); n != int64(refused) {
		t.Errorf("enqueue_failed_log_records = %d, want %d", n, refused)
	}
	close(release)
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, entries := sink.entries(t); len(entries) != accepted {
		t.Errorf("delivered %d, want every accepted event (%d)", len(entries), accepted)
	}
}

// TestABatchLargerThanTheFreeRoomQueuesWhatFits: the queue counts events
// and refuses a request larger than its free room whole; the exporter then
// queues, one by one, the events of the batch that fit, drops only the
// others and counts exactly those.
func TestABatchLargerThanTheFreeRoomQueuesWhatFits(t *testing.T) {
	release := make(chan struct{})
	sink := newSink(t)
	sink.respond = func(_ int, w http.ResponseWriter) {
		<-release // Loki hangs: nothing leaves the queue
		w.WriteHeader(http.StatusNoContent)
	}
	cfg := testConfig(sink.URL)
	q := cfg.QueueConfig.Get()
	q.WaitForResult = false
	q.QueueSize = 10
	q.NumConsumers = 1
	cfg.RateLimit.Enabled = false
	exp, tt := startExporter(t, cfg)

	batch := func(first, n int) plog.Logs {
		ld, lrs := newLogs()
		for i := first; i < first+n; i++ {
			event(lrs, t0.Add(time.Duration(i)*time.Millisecond), "probe_failure", "mnl-01", "Manila", "Globe", strconv.Itoa(i))
		}
		return ld
	}
	if err := exp.ConsumeLogs(context.Background(), batch(0, 4)); err != nil {
		t.Fatal(err)
	}
	// 6 of these 10 fit.
	err := exp.ConsumeLogs(context.Background(), batch(4, 10))
	if !errors.Is(err, exporterhelper.ErrQueueIsFull) || !strings.Contains(err.Error(), "4 of 10 events dropped") {
		t.Errorf("a batch 4 events over the free room: error %v, want ErrQueueIsFull naming 4 of 10 dropped", err)
	}
	// Nothing fits now: the whole batch is dropped, and said so.
	err = exp.ConsumeLogs(context.Background(), batch(14, 3))
	if !errors.Is(err, exporterhelper.ErrQueueIsFull) || !strings.Contains(err.Error(), "3 of 3 events dropped") {
		t.Errorf("a batch into a full queue: error %v, want ErrQueueIsFull naming 3 of 3 dropped", err)
	}
	if n := counter(t, tt, "bantay_loki_queue_full_events"); n != 7 {
		t.Errorf("bantay_loki_queue_full_events = %d, want 7", n)
	}
	close(release)
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	_, entries := sink.entries(t)
	for _, e := range entries {
		got = append(got, lineOf(t, e)["message"].(string))
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want the first 10 events, in order", got)
	}
}

// TestABatchLargerThanTheWholeQueueQueuesWhatFits: a batch over the
// queue's capacity is refused by exporterhelper for good, not as full;
// the exporter queues what fits of it all the same.
func TestABatchLargerThanTheWholeQueueQueuesWhatFits(t *testing.T) {
	release := make(chan struct{})
	sink := newSink(t)
	sink.respond = func(_ int, w http.ResponseWriter) {
		<-release
		w.WriteHeader(http.StatusNoContent)
	}
	cfg := testConfig(sink.URL)
	q := cfg.QueueConfig.Get()
	q.WaitForResult = false
	q.QueueSize = 10
	q.NumConsumers = 1
	cfg.RateLimit.Enabled = false
	exp, tt := startExporter(t, cfg)

	ld, lrs := newLogs()
	for i := range 15 {
		event(lrs, t0.Add(time.Duration(i)*time.Millisecond), "probe_failure", "mnl-01", "Manila", "Globe", strconv.Itoa(i))
	}
	err := exp.ConsumeLogs(context.Background(), ld)
	if !errors.Is(err, exporterhelper.ErrQueueIsFull) || !strings.Contains(err.Error(), "5 of 15 events dropped") {
		t.Errorf("a batch of 15 into a queue of 10: error %v, want ErrQueueIsFull naming 5 of 15 dropped", err)
	}
	if n := counter(t, tt, "bantay_loki_queue_full_events"); n != 5 {
		t.Errorf("bantay_loki_queue_full_events = %d, want 5", n)
	}
	close(release)
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, entries := sink.entries(t); len(entries) != 10 {
		t.Errorf("delivered %d, want the 10 that fitted", len(entries))
	}
}

func TestUnusableLabelValueIsCountedAndKept(t *testing.T) {
	sink := newSink(t)
	exp, tt := startExporter(t, testConfig(sink.URL))
	ld, lrs := newLogs()
	lr := event(lrs, t0, "probe_rejected", "", "Manila", strings.Repeat("Globe", 300), "probe rejected: unknown carrier")
	lr.Attributes().PutStr("src_city", "Ma\xffnila")
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	_ = exp.Shutdown(context.Background())
	labels, entries := sink.entries(t)
	if len(entries) != 1 {
		t.Fatalf("%d entries, want the record delivered without the bad labels", len(entries))
	}
	if strings.Contains(labels[0], "carrier=") || strings.Contains(labels[0], "src_city=") {
		t.Errorf("unusable values used as labels: %s", labels[0])
	}
	if m := metaMap(entries[0]); len(m["carrier"]) != 1500 {
		t.Errorf("carrier not kept in structured metadata: %d bytes", len(m["carrier"]))
	}
	if n := counter(t, tt, "bantay_loki_invalid_label_values"); n != 2 {
		t.Errorf("%s = %d, want 2", "bantay_loki_invalid_label_values", n)
	}
}
