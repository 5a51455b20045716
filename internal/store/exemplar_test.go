package store

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

var slowTrace = pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

// nativeBatch is one cumulative exponential histogram point of
// network.latency.native as the probe sends it (scale 3: bucket i of the
// positive range is (2^(i/8), 2^((i+1)/8)]), with the exemplar of a slow
// sample measured at exTime. The SDK's reservoir keeps an exemplar until a
// newer measurement replaces it, so cumulative points repeat it.
func nativeBatch(ts, exTime time.Time, offset int32, counts []uint64, sum float64) pmetric.Metrics {
	// latencyBatch's resource and point, with the classic histogram
	// replaced by the exponential one.
	md := latencyBatch(ts, counts, sum)
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	classic := pmetric.NewHistogramDataPoint()
	m.Histogram().DataPoints().At(0).CopyTo(classic)
	m.SetName(metricmodel.LatencyNative)
	h := m.SetEmptyExponentialHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	classic.Attributes().CopyTo(dp.Attributes())
	dp.Attributes().PutStr("target", "dvo-echo")
	dp.SetScale(3)
	dp.Positive().SetOffset(offset)
	dp.Positive().BucketCounts().FromRaw(counts)
	dp.SetCount(classic.Count())
	dp.SetSum(classic.Sum())
	dp.SetStartTimestamp(classic.StartTimestamp())
	dp.SetTimestamp(classic.Timestamp())
	ex := dp.Exemplars().AppendEmpty()
	ex.SetTimestamp(pcommon.NewTimestampFromTime(exTime))
	ex.SetDoubleValue(180)
	ex.SetTraceID(slowTrace)
	ex.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	return md
}

// The store keeps the probes' exemplars (issue 12): an exemplar on a
// native histogram point and one on a classic bucket come back from
// /api/v1/query_exemplars with their trace id and the series' labels, and
// histogram_quantile works over the native series.
func TestExemplarsAndNativeHistogramsThroughPrometheusAPI(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	ctx := context.Background()
	// Offset 40 at scale 3: the first bucket is (2^5, 2^5.125] = (32, 34.9] ms.
	slowAt := now.Add(-40 * time.Second)
	require.NoError(t, s.AppendMetrics(ctx, nativeBatch(now.Add(-30*time.Second), slowAt, 40, []uint64{1, 1, 0}, 68)))
	require.NoError(t, s.AppendMetrics(ctx, nativeBatch(now, slowAt, 40, []uint64{3, 3, 2}, 290)))
	classic := latencyBatch(now, []uint64{0, 0, 1, 1}, 200)
	ex := classic.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Histogram().DataPoints().At(0).Exemplars().AppendEmpty()
	ex.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-2 * time.Second)))
	ex.SetDoubleValue(120)
	ex.SetTraceID(pcommon.TraceID{0xaa, 1})
	require.NoError(t, s.AppendMetrics(ctx, classic))

	srv := httptest.NewServer(http.StripPrefix("/api/v1", s.APIHandler(APIDeps{})))
	defer srv.Close()

	code, r := get(t, srv, "/api/v1/query_exemplars", url.Values{
		"query": {`{__name__=~"network_latency_native_milliseconds|network_latency_milliseconds_bucket"}`},
		"start": {formatTime(now.Add(-time.Minute))},
		"end":   {formatTime(now)},
	})
	require.Equal(t, http.StatusOK, code, r.Error)
	var got []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
			Value  string            `json:"value"`
		} `json:"exemplars"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &got))
	byName := map[string]map[string]string{}
	for _, g := range got {
		require.Len(t, g.Exemplars, 1, "a repeated exemplar is stored once: %v", g.SeriesLabels)
		byName[g.SeriesLabels["__name__"]] = g.Exemplars[0].Labels
		assert.Equal(t, "mnl-01", g.SeriesLabels["instance"])
	}
	require.Contains(t, byName, "network_latency_native_milliseconds", "exemplar on the native histogram: %s", r.Data)
	assert.Equal(t, slowTrace.String(), byName["network_latency_native_milliseconds"]["trace_id"])
	assert.Equal(t, "0102030405060708", byName["network_latency_native_milliseconds"]["span_id"])
	require.Contains(t, byName, "network_latency_milliseconds_bucket", "exemplar on a classic bucket: %s", r.Data)
	assert.Equal(t, "aa010000000000000000000000000000", byName["network_latency_milliseconds_bucket"]["trace_id"])

	// 6 new samples in 30 s: 2 in (32, 34.9], 2 in (34.9, 38.1], 2 in
	// (38.1, 41.5]: the median is half-way through the second bucket, which
	// PromQL interpolates exponentially in a native histogram: 2^(41.5/8).
	code, r = get(t, srv, "/api/v1/query", url.Values{
		"query": {`histogram_quantile(0.5, sum(rate(network_latency_native_milliseconds[1m])))`},
		"time":  {formatTime(now)},
	})
	require.Equal(t, http.StatusOK, code, r.Error)
	var vec struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &vec))
	require.Len(t, vec.Result, 1, "%s", r.Data)
	v, err := strconv.ParseFloat(vec.Result[0].Value[1].(string), 64)
	require.NoError(t, err)
	assert.InDelta(t, math.Exp2(41.5/8), v, 0.01)
}

// A negative max_exemplars is refused by name (0 turns exemplars off).
func TestConfigRefusesNegativeMaxExemplars(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxExemplars = -1
	require.ErrorContains(t, cfg.Validate(), "max_exemplars")
}
