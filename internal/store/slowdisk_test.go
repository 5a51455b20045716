package store

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bantay-noc/bantay/internal/harness/slowfs"
)

// commitHistogram is bantay_store_commit_duration_seconds as reg exposes it.
func commitHistogram(t *testing.T, reg *prometheus.Registry) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "bantay_store_commit_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatal("bantay_store_commit_duration_seconds is not registered")
	return nil
}

// bucket is the cumulative count of h at the bound le.
func bucket(t *testing.T, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket le=%v", le)
	return 0
}

// TestCommitDurationShowsASlowDisk: with the data directory on a disk whose
// writes take 300 ms, the commit an acknowledgement waits for shows in
// bantay_store_commit_duration_seconds above the 0.25 s bound, while the
// store stays writable (a slow disk is not a failed one) and the point is
// stored.
func TestCommitDurationShowsASlowDisk(t *testing.T) {
	disk := slowfs.Mount(t)
	reg := prometheus.NewRegistry()
	s, err := Open(DefaultConfig(filepath.Join(disk.Dir, "data")), reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) }) // before the unmount
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(ctx, latencyBatch(now.Add(-15*time.Second), []uint64{1, 0, 0, 0}, 5)))
	before := commitHistogram(t, reg)
	require.Equal(t, uint64(1), before.GetSampleCount(), "one commit so far")

	const delay = 300 * time.Millisecond
	disk.SetDelay(delay)
	require.NoError(t, s.AppendMetrics(ctx, latencyBatch(now, []uint64{1, 1, 0, 0}, 20)))
	disk.SetDelay(0)
	after := commitHistogram(t, reg)
	assert.Equal(t, uint64(2), after.GetSampleCount())
	assert.Equal(t, bucket(t, before, .25), bucket(t, after, .25), "the slow commit is counted above 0.25 s")
	assert.GreaterOrEqual(t, after.GetSampleSum()-before.GetSampleSum(), delay.Seconds())
	assert.NotZero(t, disk.Delayed().Writes, "the commit wrote through the slow disk")
	assert.True(t, s.Writable(), "a slow disk is not a failed one")
	v := instant(t, s, "network_latency_milliseconds_count", now)
	require.Len(t, v, 1)
	assert.Equal(t, 2.0, v[0].F, "the slowly committed point is stored")
}
