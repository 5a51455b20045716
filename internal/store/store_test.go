package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(DefaultConfig(dir), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return s
}

// latencyBatch is one probe uplink's cumulative latency histogram to one
// destination, as citytag leaves it.
func latencyBatch(ts time.Time, counts []uint64, sum float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("network.latency")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.Attributes().PutStr("src_city", "Manila")
	dp.Attributes().PutStr("dst_city", "Davao")
	dp.Attributes().PutStr("carrier", "Globe")
	dp.Attributes().PutStr("network_type", "5g")
	dp.ExplicitBounds().FromRaw([]float64{10, 20, 50})
	dp.BucketCounts().FromRaw(counts)
	var n uint64
	for _, c := range counts {
		n += c
	}
	dp.SetCount(n)
	dp.SetSum(sum)
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Hour)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	return md
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func get(t *testing.T, srv *httptest.Server, path string, params url.Values) (int, apiResponse) {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + params.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r apiResponse
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	return resp.StatusCode, r
}

func TestAppendThenQueryThroughPrometheusAPI(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now.Add(-30*time.Second), []uint64{1, 2, 1, 0}, 70)))
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{2, 4, 2, 0}, 140)))

	srv := httptest.NewServer(http.StripPrefix("/api/v1", s.APIHandler(APIDeps{})))
	defer srv.Close()

	code, r := get(t, srv, "/api/v1/query", url.Values{
		"query": {`network_latency_milliseconds_bucket{src_city="Manila",le="20"}`},
		"time":  {formatTime(now)},
	})
	require.Equal(t, http.StatusOK, code, r.Error)
	var vec struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &vec))
	require.Equal(t, "vector", vec.ResultType)
	require.Len(t, vec.Result, 1)
	assert.Equal(t, "6", vec.Result[0].Value[1], "cumulative le=20 bucket = 2+4")
	assert.Equal(t, "bantay-probe", vec.Result[0].Metric["job"])
	assert.Equal(t, "mnl-01", vec.Result[0].Metric["instance"])
	assert.Equal(t, "Davao", vec.Result[0].Metric["dst_city"])

	// histogram_quantile over the rate of the interval: 4 new samples, 1 in
	// (0,10], 2 in (10,20], 1 in (20,50] → the median is at the top of (10,20].
	code, r = get(t, srv, "/api/v1/query", url.Values{
		"query": {`histogram_quantile(0.5, sum by (le) (rate(network_latency_milliseconds_bucket[1m])))`},
		"time":  {formatTime(now)},
	})
	require.Equal(t, http.StatusOK, code, r.Error)
	require.NoError(t, json.Unmarshal(r.Data, &vec))
	require.Len(t, vec.Result, 1)
	assert.Equal(t, "15", vec.Result[0].Value[1])

	for _, tc := range []struct {
		path   string
		params url.Values
		want   string
	}{
		{"/api/v1/labels", nil, `"src_city"`},
		{"/api/v1/label/dst_city/values", nil, `["Davao"]`},
		{"/api/v1/series", url.Values{"match[]": {`network_latency_milliseconds_count`}}, `"carrier":"Globe"`},
		{"/api/v1/metadata", nil, `"network_latency_milliseconds":[{"type":"histogram"`},
		{"/api/v1/status/buildinfo", nil, `"version":"3.`},
		{"/api/v1/query_range", url.Values{"query": {"network_latency_milliseconds_count"}, "start": {formatTime(now.Add(-time.Minute))}, "end": {formatTime(now)}, "step": {"15"}}, `"resultType":"matrix"`},
		{"/api/v1/rules", nil, `"groups":[]`},
		{"/api/v1/alerts", nil, `"alerts":[]`},
	} {
		code, r := get(t, srv, tc.path, tc.params)
		assert.Equal(t, http.StatusOK, code, "%s: %s", tc.path, r.Error)
		assert.Contains(t, string(r.Data), tc.want, tc.path)
	}

	code, r = get(t, srv, "/api/v1/query", url.Values{"query": {"sum(("}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "error", r.Status)
	assert.Equal(t, "bad_data", r.ErrorType, "Prometheus's error format")
}

func TestStaleMarkerEndsTheSeries(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now.Add(-time.Minute), []uint64{1, 0, 0, 0}, 5)))
	stale := latencyBatch(now.Add(-30*time.Second), []uint64{1, 0, 0, 0}, 5)
	dp := stale.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Histogram().DataPoints().At(0)
	dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	require.NoError(t, s.AppendMetrics(context.Background(), stale))

	res := s.Engine()
	q, err := res.NewInstantQuery(context.Background(), s.DB(), nil, "network_latency_milliseconds_count", now)
	require.NoError(t, err)
	r := q.Exec(context.Background())
	require.NoError(t, r.Err)
	v, err := r.Vector()
	require.NoError(t, err)
	assert.Empty(t, v, "a stale marker removes the series from instant queries, as in Prometheus")
}

func TestCounterResetIsHandledByRate(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	// 10 → 20 (+10), then the probe restarts: 5 (+5 after the reset).
	for i, counts := range [][]uint64{{10, 0, 0, 0}, {20, 0, 0, 0}, {5, 0, 0, 0}} {
		md := latencyBatch(now.Add(time.Duration(i-2)*15*time.Second), counts, 1)
		require.NoError(t, s.AppendMetrics(context.Background(), md))
	}
	q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil, "increase(network_latency_milliseconds_count[1m])", now)
	require.NoError(t, err)
	r := q.Exec(context.Background())
	require.NoError(t, r.Err)
	v, err := r.Vector()
	require.NoError(t, err)
	require.Len(t, v, 1)
	// increase() extrapolates to the window edges, so only bound it: with the
	// reset handled the raw increase is 15; without, it would be negative or 0.
	assert.Greater(t, v[0].F, 14.0)
}

func TestConflictingSampleIsRefusedButTheRestIsStored(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{1, 0, 0, 0}, 5)))
	// Same timestamp, different value: a conflicting duplicate, for every series.
	err := s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{2, 0, 0, 0}, 6))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "retrying a conflicting sample cannot succeed")
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Contains(t, err.Error(), "samples refused by the TSDB")
	// An exact retry (same timestamp and value) is accepted silently.
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{1, 0, 0, 0}, 5)))
	assert.Greater(t, testutil.ToFloat64(s.rejectedSamples.WithLabelValues("duplicate_conflict")), 0.0)
}

func TestOverloadIsARetryableRefusal(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxConcurrentAppends = 1
	cfg.AppendWait = 10 * time.Millisecond
	s, err := Open(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer s.Close()
	s.slots <- struct{}{} // occupy the only slot, as a long append would
	err = s.AppendMetrics(context.Background(), latencyBatch(time.Now(), []uint64{1, 0, 0, 0}, 5))
	<-s.slots
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrOverloaded))
	assert.False(t, consumererror.IsPermanent(err))
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Equal(t, cfg.RetryAfter, retryDelay(t, err), "RetryInfo becomes HTTP Retry-After in the OTLP receiver")
	assert.Equal(t, 1.0, testutil.ToFloat64(s.refusedRequests.WithLabelValues("overloaded")))
}

// retryDelay is the RetryInfo delay of a gRPC status error.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("no RetryInfo in %v", err)
	return 0
}

func TestAcknowledgedSamplesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{3, 1, 0, 0}, 30)))
	require.NoError(t, s.Close())

	s = openStore(t, dir)
	defer s.Close()
	q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil, "network_latency_milliseconds_count", now)
	require.NoError(t, err)
	r := q.Exec(context.Background())
	require.NoError(t, r.Err)
	v, err := r.Vector()
	require.NoError(t, err)
	require.Len(t, v, 1)
	assert.Equal(t, 4.0, v[0].F)
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for field, mutate := range map[string]func(*Config){
		"dir":                    func(c *Config) { c.Dir = "" },
		"retention":              func(c *Config) { c.Retention = time.Minute },
		"max_concurrent_appends": func(c *Config) { c.MaxConcurrentAppends = 0 },
		"lookback_delta":         func(c *Config) { c.LookbackDelta = 0 },
		"recovery_interval":      func(c *Config) { c.RecoveryInterval = 0 },
		"block_duration":         func(c *Config) { c.BlockDuration = 90 * time.Second },
		// 0 would build Prometheus's read gate with no capacity: every read waits forever.
		"remote_read.concurrency_limit":  func(c *Config) { c.RemoteRead.ConcurrencyLimit = 0 },
		"remote_read.sample_limit":       func(c *Config) { c.RemoteRead.SampleLimit = -1 },
		"remote_read.max_bytes_in_frame": func(c *Config) { c.RemoteRead.MaxBytesInFrame = 0 },
	} {
		c := DefaultConfig("x")
		mutate(&c)
		err := c.Validate()
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), field+":"), err.Error())
	}
}

func formatTime(t time.Time) string {
	return strings.TrimSuffix(strings.TrimSuffix(time.Unix(0, t.UnixNano()).UTC().Format("2006-01-02T15:04:05.000Z07:00"), ""), "")
}

// TestDeltaIsRefusedByTheStoreItself: delta temporality reaches the store
// only through the pipeline's delta_to_cumulative processor (tested in
// collector/binary_test.go). A delta point arriving here directly is refused
// as Prometheus's OTLP translator refuses it without delta support, never
// stored as if it were cumulative, and the cumulative points of the same
// request are stored.
func TestDeltaIsRefusedByTheStoreItself(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	md := latencyBatch(now, []uint64{1, 2, 1, 0}, 70)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	d := ms.AppendEmpty()
	d.SetName("bantay.probe.attempts")
	sum := d.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetIntValue(3)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))

	err := s.AppendMetrics(context.Background(), md)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err))
	assert.Contains(t, err.Error(), `invalid temporality and type combination for metric "bantay.probe.attempts"`)
	assert.Equal(t, 1.0, testutil.ToFloat64(s.refusedRequests.WithLabelValues("invalid")))

	for query, want := range map[string]int{"network_latency_milliseconds_count": 1, "bantay_probe_attempts_total": 0} {
		q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil, query, now)
		require.NoError(t, err)
		r := q.Exec(context.Background())
		require.NoError(t, r.Err)
		v, err := r.Vector()
		require.NoError(t, err)
		assert.Len(t, v, want, query)
	}
}

// TestSelfTelemetry: the registry given to Open carries what the collector
// exposes about its store: samples appended, samples refused by reason, the
// TSDB's head series and its configured retention.
func TestSelfTelemetry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig(t.TempDir())
	cfg.Retention = 48 * time.Hour
	s, err := Open(cfg, reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{1, 0, 0, 0}, 5)))
	require.Error(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{2, 0, 0, 0}, 6)))

	got := map[string]float64{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[name] = m.GetGauge().GetValue()
			}
		}
	}
	// One histogram with 3 bounds: 4 buckets + _sum + _count (no target_info:
	// the resource has no attributes beyond job and instance).
	const series = 4 + 2
	assert.Equal(t, float64(series), got["prometheus_tsdb_head_series"])
	assert.Equal(t, float64(series), got["bantay_store_appended_samples_total"])
	assert.Equal(t, float64(series), got["bantay_store_rejected_samples_total{reason=duplicate_conflict}"],
		"every sample of the second request conflicts with the first")
	assert.Equal(t, (48 * time.Hour).Seconds(), got["prometheus_tsdb_retention_limit_seconds"], "retention reaches the TSDB")
}
