package store

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// gaugeSamples is one request with one gauge series sampled at each of ts.
func gaugeSamples(name string, ts []time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	g := m.SetEmptyGauge()
	for i, t := range ts {
		dp := g.DataPoints().AppendEmpty()
		dp.SetDoubleValue(float64(i))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(t))
	}
	return md
}

// TestCleanRestartFromTheMemorySnapshotKeepsEveryPoint: with the memory
// snapshot on shutdown, a clean restart loads the head from the snapshot
// instead of replaying the WAL, and keeps every point: in-order ones in
// full chunks (mmapped) and in the open chunk, and out-of-order ones (which
// live in the WBL, not in the snapshot).
func TestCleanRestartFromTheMemorySnapshotKeepsEveryPoint(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	var inOrder, late []time.Time
	for i := range 300 { // 300 samples: two full chunks of 120 and an open one
		inOrder = append(inOrder, now.Add(time.Duration(i-300)*time.Second))
	}
	for i := range 10 { // between the in-order ones, within the OOO window
		late = append(late, now.Add(time.Duration(i*10-290)*time.Second+500*time.Millisecond))
	}
	s := openStore(t, dir)
	require.NoError(t, s.AppendMetrics(context.Background(), gaugeSamples("bantay.snap", inOrder)))
	require.NoError(t, s.AppendMetrics(context.Background(), gaugeSamples("bantay.snap", late)))
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{3, 1, 0, 0}, 30)))
	require.NoError(t, s.Close())
	snaps, err := filepath.Glob(filepath.Join(dir, "chunk_snapshot.*"))
	require.NoError(t, err)
	require.Len(t, snaps, 1, "a clean shutdown writes the memory snapshot")

	reg := prometheus.NewRegistry()
	s, err = Open(DefaultConfig(dir), reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP prometheus_tsdb_snapshot_replay_error_total Total number snapshot replays that failed.
# TYPE prometheus_tsdb_snapshot_replay_error_total counter
prometheus_tsdb_snapshot_replay_error_total 0
`), "prometheus_tsdb_snapshot_replay_error_total"), "the snapshot loaded")
	for query, want := range map[string]float64{
		"count_over_time(bantay_snap[10m])":            310,
		"network_latency_milliseconds_count":           4,
		"count_over_time(bantay_snap[1s] offset 289s)": 2, // (now-290s, now-289s]: the late sample at -289.5s and the in-order one at -289s
	} {
		v := instant(t, s, query, now)
		require.Len(t, v, 1, query)
		assert.Equal(t, want, v[0].F, query)
	}
}
