package store

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// fillBatch is one request of fillSeries new series (their series record
// spans several WAL pages, so a write that fails half-way tears it), all
// with the value req.
const fillSeries = 500

func fillBatch(req int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("bantay.fill")
	g := m.SetEmptyGauge()
	for i := range fillSeries {
		dp := g.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("req", fmt.Sprint(req))
		dp.Attributes().PutStr("idx", fmt.Sprint(i))
		dp.Attributes().PutStr("target", strings.Repeat("reflector-", 8)+fmt.Sprint(i))
		dp.SetDoubleValue(float64(req))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	}
	return md
}

// instant runs query on s at the given time.
func instant(t *testing.T, s *Store, query string, at time.Time) promql.Vector {
	t.Helper()
	q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil, query, at)
	require.NoError(t, err)
	r := q.Exec(context.Background())
	require.NoError(t, r.Err)
	v, err := r.Vector()
	require.NoError(t, err, query)
	return v
}

// storedReqs counts, per req label, the series of bantay_fill in s.
func storedReqs(t *testing.T, s *Store, at time.Time) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, smp := range instant(t, s, "count by (req) (bantay_fill)", at) {
		got[smp.Metric.Get("req")] = smp.F
	}
	return got
}

// TestFullDiskKeepsEveryAcknowledgedPoint: the data directory is a 30 MiB
// tmpfs; load runs until the disk is full (the store refuses, retryably),
// space is freed, more is acknowledged, and after a restart every
// acknowledged point is there. Before the fix the WAL repair at restart
// found the record the failed write tore and deleted everything after it,
// the points acknowledged once space was back included.
func TestFullDiskKeepsEveryAcknowledgedPoint(t *testing.T) {
	dir := testenv.Tmpfs(t, "30m")
	data := filepath.Join(dir, "data")
	cfg := DefaultConfig(data)
	cfg.RecoveryInterval = 20 * time.Millisecond
	// slog's handlers serialise their writes; the test reads after Close.
	var logs strings.Builder
	s, err := Open(cfg, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()

	now := time.Now().Truncate(time.Second)
	var acked []int
	req := 0
	send := func() error {
		req++
		err := s.AppendMetrics(context.Background(), fillBatch(req, now))
		if err == nil {
			acked = append(acked, req)
		}
		return err
	}
	for range 5 {
		require.NoError(t, send())
	}

	// An appender opened before the reopen (a rules evaluation, say) must not
	// commit into the closed TSDB afterwards, nor make the store unwritable.
	stale := s.DB().AppenderV2(context.Background())
	_, err = stale.Append(0, labels.FromStrings("__name__", "bantay_stale"), 0, now.UnixMilli(), 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)

	freeSpace := testenv.FillDisk(t, dir, 1<<20)
	var refusal error
	for range 1000 { // bounded: 1 MiB lasts a few dozen requests
		if refusal = send(); refusal != nil {
			break
		}
	}
	require.Error(t, refusal, "the disk never filled up")
	assert.Equal(t, codes.Unavailable, status.Code(refusal), "a full disk is a retryable refusal: %v", refusal)
	assert.Equal(t, 1.0, testutil.ToFloat64(s.commitFailures.WithLabelValues(causeNoSpace)))
	assert.False(t, s.Writable())
	assert.Equal(t, 0.0, testutil.ToFloat64(s.writableGauge))

	// While the disk is full: refused at once, with a retry delay, and reads work.
	err = send()
	require.Error(t, err)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, cfg.RetryAfter, retryDelay(t, err), "the OTLP receiver turns it into HTTP 503 with Retry-After")
	assert.Len(t, storedReqs(t, s, now), len(acked), "queries answer while the disk is full")

	// Space returns: the store repairs its WAL by itself and accepts again.
	freeSpace()
	for i := 0; i < 3000 && !s.Writable(); i++ { // bounded by count; no deadline to miss
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, s.Writable(), "the store did not recover after space was freed")
	for range 20 {
		require.NoError(t, send())
	}
	assert.Equal(t, 1.0, testutil.ToFloat64(s.reopens.WithLabelValues("success")))
	require.ErrorIs(t, stale.Commit(), errStale)
	assert.True(t, s.Writable(), "a stale appender's refusal is not a failed write")

	require.NoError(t, s.Close())
	assert.Equal(t, 1, strings.Count(logs.String(), "store cannot write its WAL"), "one line on the failure:\n%s", logs.String())
	assert.Contains(t, logs.String(), "cause=no_space")
	assert.Equal(t, 1, strings.Count(logs.String(), "store writable again"), "one line on the recovery")

	s, err = Open(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	got := storedReqs(t, s, now)
	for _, r := range acked {
		assert.Equal(t, float64(fillSeries), got[fmt.Sprint(r)], "acknowledged request %d after the restart", r)
	}
	t.Logf("%d requests acknowledged (%d points), all stored after the restart", len(acked), len(acked)*fillSeries)
}
