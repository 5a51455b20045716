package store

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeBlocks writes one 2 h block (the head's block range) per window from
// start, each with one sample a minute of one series, as the head's
// compaction leaves them.
func writeBlocks(t *testing.T, dir string, start time.Time, windows int) {
	t.Helper()
	ls := labels.FromStrings(model.MetricNameLabel, "bantay_block_test")
	for w := range windows {
		bw, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, tsdb.DefaultBlockDuration)
		require.NoError(t, err)
		app := bw.Appender(context.Background())
		from := start.Add(time.Duration(w) * 2 * time.Hour)
		for m := range 120 {
			_, err := app.Append(0, ls, from.Add(time.Duration(m)*time.Minute).UnixMilli(), float64(m))
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
		_, err = bw.Flush(context.Background())
		require.NoError(t, err)
		require.NoError(t, bw.Close())
	}
}

// TestBlocksAreCompactedLikePrometheus: the TSDB's default options keep
// every 2 h block as it was cut (MaxBlockDuration 2 h), so 15 days of
// retention were 180 blocks that every long query had to open and merge;
// Prometheus compacts up to a tenth of the retention (36 h at 15 d). Of five
// 2 h blocks from a multiple of 6 h, the first three become one 6 h block;
// the two after it wait for the rest of their 6 h.
func TestBlocksAreCompactedLikePrometheus(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-48 * time.Hour).Truncate(6 * time.Hour)
	writeBlocks(t, dir, start, 5)
	s := openStore(t, dir)
	defer s.Close()
	require.Len(t, s.db.db.Blocks(), 5)
	require.NoError(t, s.db.db.Compact(context.Background()))
	var spans []time.Duration
	for _, b := range s.db.db.Blocks() {
		spans = append(spans, time.Duration(b.MaxTime()-b.MinTime())*time.Millisecond)
	}
	require.Len(t, spans, 3, "blocks after compaction span %v", spans)
	assert.Greater(t, spans[0], 5*time.Hour, "the first three 2 h blocks are one 6 h block: %v", spans)
	v := instant(t, s, "count_over_time(bantay_block_test[11h])", start.Add(10*time.Hour))
	require.Len(t, v, 1)
	assert.Equal(t, float64(5*120), v[0].F, "every sample is still there")
}

// TestMaxBlockDurationFollowsRetention: a tenth of the retention as in
// Prometheus, within the TSDB's 2 h minimum and Prometheus's 31 d cap.
func TestMaxBlockDurationFollowsRetention(t *testing.T) {
	for retention, want := range map[time.Duration]time.Duration{
		15 * 24 * time.Hour:       36 * time.Hour,
		time.Hour:                 2 * time.Hour,
		10 * 365 * 24 * time.Hour: 31 * 24 * time.Hour,
	} {
		assert.Equal(t, want, maxBlockDuration(retention), "retention %v", retention)
	}
}
