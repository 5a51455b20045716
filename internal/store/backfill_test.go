package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/bantay-noc/bantay/internal/harness/modbuild"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// The child process of TestKilledStoreResumesRemoteWrite: a store and its
// Server in the folder this names, appending until it is killed.
const (
	childDirEnv     = "BANTAY_BACKFILL_CHILD_DIR"
	childBacklogEnv = "BANTAY_BACKFILL_CHILD_BACKLOG_UNIX_MS"
)

// TestKilledStoreResumesRemoteWrite: a store remote-writing to a real
// Prometheus is killed with SIGKILL while the remote refuses (so what it
// acknowledged meanwhile was never shipped), and restarted; the restarted
// store then takes a probe's backlog stamped before its restart. Every
// acknowledged sample, of both kinds, must reach the remote: Prometheus's
// own remote write sends neither (it tails the WAL from the restart on).
func TestKilledStoreResumesRemoteWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short leaves out the kill and restart against a real Prometheus")
	}
	// The receiver takes the backlog out of order, as Thanos receive does
	// with --tsdb.out-of-order.time-window.
	promCfg := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(promCfg, []byte("storage:\n  tsdb:\n    out_of_order_time_window: 30m\n"), 0o644))
	prom := promtest.StartPrometheus(t, "--config.file="+promCfg)

	// The remote is reached through a gate that, when shut, answers 503 as a
	// receiver in trouble does: remote write keeps the samples and retries.
	target, err := url.Parse(prom.URL)
	require.NoError(t, err)
	var shut atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(target)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if shut.Load() {
			http.Error(w, "gate shut by the test", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gate.Close()

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, `global:
  external_labels: {bantay_shard: shard-t}
remote_write:
  - url: %s/api/v1/write
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}
`, gate.URL), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	remote := prom.Client()

	first := startChild(t, dir, 0)
	// Remote write is flowing, and the resume point is on disk.
	require.True(t, waitFor(ctx, func() bool {
		resume, err := (&watermarkFile{dir: filepath.Join(dir, "data")}).read()
		return err == nil && resume > 0 && len(missing(t, ctx, remote, first.acked())) < len(first.acked())
	}), "the first samples never reached the remote:\n%s", modbuild.Tail(first.log.String(), 4000))
	shut.Store(true)
	shutAt := len(first.acked())
	require.True(t, waitFor(ctx, func() bool { return len(first.acked()) >= shutAt+30 }), "30 samples acknowledged behind the shut gate")
	first.kill(t)
	killed := time.Now()
	shut.Store(false)

	second := startChild(t, dir, killed.Add(-20*time.Second).UnixMilli())
	require.True(t, waitFor(ctx, func() bool { return len(second.acked()) > 20 }), "the restarted store's first acknowledgements:\n%s", modbuild.Tail(second.log.String(), 4000))
	want := append(first.acked(), second.acked()...)
	var lost []string
	// Bounded by ctx: remote write and the backfill ship on their own schedule.
	if !waitFor(ctx, func() bool { lost = missing(t, ctx, remote, want); return len(lost) == 0 }) {
		// Counted again with a context of its own: the last poll's may have
		// ended in the middle of its query.
		count, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		lost = missing(t, count, remote, want)
		t.Fatalf("%d of %d acknowledged samples not in the remote, first %v\nrestarted store's remote-write log:\n%s",
			len(lost), len(want), lost[:min(10, len(lost))], modbuild.Tail(remoteLog(second.log.String()), 4000))
	}
	require.Contains(t, second.log.String(), "remote-write backfill after restart done")
	require.NotContains(t, second.log.String(), "refused a request for good", "duplicates are taken as no-ops")
	t.Logf("%d acknowledged samples (%d behind the shut gate at the kill, 20 backlog) all in the remote", len(want), len(first.acked())-shutAt)
}

// TestBackfillChildProcess is the store TestKilledStoreResumesRemoteWrite
// kills and restarts; run alone it does nothing.
func TestBackfillChildProcess(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("the child process of TestKilledStoreResumesRemoteWrite")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg := prometheus.NewRegistry()
	s, err := Open(DefaultConfig(filepath.Join(dir, "data")), reg, logger)
	require.NoError(t, err)
	srv, err := NewServer(s, filepath.Join(dir, "prometheus.yml"), &url.URL{Scheme: "http", Host: "localhost"}, reg, logger)
	require.NoError(t, err)
	defer srv.Stop()
	ctx := context.Background()
	if from := os.Getenv(childBacklogEnv); from != "" {
		ms, err := strconv.ParseInt(from, 10, 64)
		require.NoError(t, err)
		var ts []time.Time
		for i := range 20 {
			ts = append(ts, time.UnixMilli(ms).Add(time.Duration(i)*time.Second))
		}
		require.NoError(t, s.AppendMetrics(ctx, gaugeSamples("bantay.backlog", ts)))
		for _, at := range ts {
			fmt.Printf("ack bantay_backlog %d\n", at.UnixMilli())
		}
	}
	// Bounded: the parent kills it long before.
	for range 1200 {
		now := time.Now()
		if err := s.AppendMetrics(ctx, gaugeSamples("bantay.stream", []time.Time{now})); err == nil {
			fmt.Printf("ack bantay_stream %d\n", now.UnixMilli())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// child is a running TestBackfillChildProcess and what it acknowledged.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *modbuild.Output
	mu     sync.Mutex
	acks   []string // "series ms"
}

func startChild(t *testing.T, dir string, backlogFrom int64) *child {
	t.Helper()
	c := &child{exited: make(chan struct{}), log: &modbuild.Output{}}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestBackfillChildProcess$", "-test.v")
	c.cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	if backlogFrom > 0 {
		c.cmd.Env = append(c.cmd.Env, childBacklogEnv+"="+strconv.FormatInt(backlogFrom, 10))
	}
	c.cmd.Stderr = c.log
	out, err := c.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if ack, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				c.mu.Lock()
				c.acks = append(c.acks, ack)
				c.mu.Unlock()
			}
		}
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.kill(t) })
	return c
}

func (c *child) acked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.acks...)
}

// kill ends the child with SIGKILL: no shutdown, no flush.
func (c *child) kill(t *testing.T) {
	select {
	case <-c.exited:
		return
	default:
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Errorf("kill the child store: %v", err)
	}
	<-c.exited
}

// missing is the acknowledged samples ("series ms") the remote lacks.
func missing(t *testing.T, ctx context.Context, remote *promtest.Client, acked []string) []string {
	t.Helper()
	have := map[string]bool{}
	for _, name := range []string{"bantay_stream", "bantay_backlog"} {
		res, err := remote.Query(ctx, name+`{bantay_shard="shard-t"}[15m]`, time.Now())
		if err != nil {
			t.Logf("query the remote: %v", err)
			return acked
		}
		m, err := res.Matrix()
		if err != nil {
			t.Logf("query the remote: %v", err)
			return acked
		}
		for _, s := range m {
			for _, p := range s.Values {
				have[fmt.Sprintf("%s %d", name, int64(p.Timestamp))] = true
			}
		}
	}
	var lost []string
	for _, a := range acked {
		if !have[a] {
			lost = append(lost, a)
		}
	}
	return lost
}

// remoteLog is the lines of a child's log about remote write.
func remoteLog(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if strings.Contains(line, "remote") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// waitFor polls cond every 200 ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return true
}

// The resume point follows the remote's newest acknowledged sample, two
// margins behind, and waits for late samples until they are sent.
func TestResumePointFollowsTheRemoteAndWaitsForLateSamples(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	var sent atomic.Int64
	b, err := newRemoteBackfill(s.db, dir, sent.Load, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cfg, err := config.Load("remote_write: [{url: 'http://127.0.0.1:1/api/v1/write'}]\n", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, b.applyConfig(cfg))
	mark := &watermarkFile{dir: dir}
	first, err := mark.read()
	require.NoError(t, err)
	require.InDelta(t, time.Now().UnixMilli(), first, 5000, "a first start writes its start as the resume point")
	require.Nil(t, b.restart, "a first start has nothing to resume")

	// Nothing sent yet: the point holds.
	b.persist()
	got, err := mark.read()
	require.NoError(t, err)
	require.Equal(t, first, got)

	acked := time.Now().Add(time.Minute).UnixMilli()
	sent.Store(acked)
	b.persist()
	got, err = mark.read()
	require.NoError(t, err)
	require.Equal(t, acked-2*backfillMargin.Milliseconds(), got)

	lateAt := time.Now().Add(-10 * time.Minute).UnixMilli()
	l := b.newBatch()
	l.observe(labels.FromStrings(model.MetricNameLabel, "late"), lateAt)
	l.observe(labels.FromStrings(model.MetricNameLabel, "in_time"), time.Now().Add(time.Hour).UnixMilli())
	l.committed()
	require.Len(t, b.late, 1, "only the late sample is the backfill's")
	b.persist()
	got, err = mark.read()
	require.NoError(t, err)
	require.Equal(t, lateAt, got, "a late sample holds the point back until it is sent")

	// The late series has nothing in the TSDB (it was never appended), so
	// the pass sends nothing and the point moves on.
	b.sendLate(context.Background())
	b.persist()
	got, err = mark.read()
	require.NoError(t, err)
	require.Equal(t, acked-2*backfillMargin.Milliseconds(), got)

	// A restart resumes from the point on disk to the tail's start.
	b2, err := newRemoteBackfill(s.db, dir, func() int64 { return 0 }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NotNil(t, b2.restart)
	require.Equal(t, timeRange{got, b2.tailStart}, *b2.restart)
}

// A resume point file that cannot be read is named in the log, counted, and
// resumed from as far back as the backfill goes.
func TestUnreadableResumePointBackfillsTheLongestRange(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, watermarkFileName), []byte("{torn"), 0o644))
	var log strings.Builder
	b, err := newRemoteBackfill(nil, dir, func() int64 { return 0 }, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&log, nil)))
	require.NoError(t, err)
	require.Contains(t, log.String(), watermarkFileName)
	require.Equal(t, 1.0, testutil.ToFloat64(b.mark.failures))
	require.NotNil(t, b.restart)
	require.InDelta(t, time.Now().Add(-backfillMaxAge).UnixMilli(), b.restart.mint, 5000)
}

// The backfill labels a series as the remote's queue does (external labels
// the series lacks, then write_relabel_configs) and keeps to the remote's
// max_samples_per_send.
func TestBackfillLabelsAndBatchesAsTheQueue(t *testing.T) {
	receiver, received := decodingReceiver(t)
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	var ts []time.Time
	for i := range 5 {
		ts = append(ts, now.Add(time.Duration(i-5)*time.Second))
	}
	require.NoError(t, s.AppendMetrics(context.Background(), gaugeSamples("bantay.keep", ts)))
	require.NoError(t, s.AppendMetrics(context.Background(), gaugeSamples("bantay.drop", ts[:2])))

	b, err := newRemoteBackfill(s.db, dir, func() int64 { return 0 }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cfg, err := config.Load(fmt.Sprintf(`global:
  external_labels: {bantay_shard: s1, instance: not-this-one}
remote_write:
  - url: %s
    queue_config: {max_samples_per_send: 2}
    write_relabel_configs:
      - {source_labels: [__name__], regex: bantay_drop, action: drop}
`, receiver), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, b.applyConfig(cfg))
	n, err := b.sendRange(context.Background(), reasonRestart, timeRange{ts[0].UnixMilli(), now.UnixMilli()}, labels.EmptyLabels())
	require.NoError(t, err)
	require.Equal(t, 7, n, "read: both series")

	var (
		got []int64
		sb  labels.ScratchBuilder
	)
	for _, req := range received() {
		perRequest := 0
		for _, series := range req.Timeseries {
			l := series.ToLabels(&sb, nil)
			require.Equal(t, "bantay_keep", l.Get(model.MetricNameLabel))
			require.Equal(t, "s1", l.Get("bantay_shard"), "an external label the series lacks is added")
			require.Equal(t, "mnl-01", l.Get("instance"), "the series' own label wins over an external one")
			for _, smp := range series.Samples {
				got = append(got, smp.Timestamp)
			}
			perRequest += len(series.Samples)
		}
		require.LessOrEqual(t, perRequest, 2, "max_samples_per_send")
	}
	var want []int64
	for _, at := range ts {
		want = append(want, at.UnixMilli())
	}
	require.Equal(t, want, got)
	require.Equal(t, 5.0, testutil.ToFloat64(b.samples.WithLabelValues(reasonRestart, resultSent)))
	require.Equal(t, 2.0, testutil.ToFloat64(b.samples.WithLabelValues(reasonRestart, resultDropped)))
}

// decodingReceiver is a remote-write endpoint that keeps every request it
// decodes, and answers 400 naming what it could not.
func decodingReceiver(t *testing.T) (url string, received func() []*prompb.WriteRequest) {
	var (
		mu       sync.Mutex
		requests []*prompb.WriteRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		compressed, err := io.ReadAll(r.Body)
		if err == nil {
			var raw []byte
			if raw, err = snappy.Decode(nil, compressed); err == nil {
				req := &prompb.WriteRequest{}
				if err = req.Unmarshal(raw); err == nil {
					mu.Lock()
					requests = append(requests, req)
					mu.Unlock()
					return
				}
			}
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []*prompb.WriteRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]*prompb.WriteRequest(nil), requests...)
	}
}

// Late samples of more series than the backfill remembers one by one widen
// one range that is sent for every series, and hold the resume point.
func TestLateSamplesBeyondTheSeriesBoundAreSentForEverySeries(t *testing.T) {
	receiver, received := decodingReceiver(t)
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	late := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for _, name := range []string{"bantay.first", "bantay.second", "bantay.third"} {
		require.NoError(t, s.AppendMetrics(context.Background(), gaugeSamples(name, []time.Time{late})))
	}
	b, err := newRemoteBackfill(s.db, dir, func() int64 { return time.Now().UnixMilli() }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cfg, err := config.Load(fmt.Sprintf("remote_write: [{url: %q}]\n", receiver), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, b.applyConfig(cfg))
	b.maxLate = 1
	l := b.newBatch()
	for _, name := range []string{"bantay_first", "bantay_second"} {
		l.observe(labels.FromStrings(model.MetricNameLabel, name, "instance", "mnl-01", "job", "bantay-probe"), late.UnixMilli())
	}
	l.committed()
	require.Len(t, b.late, 1)
	require.Equal(t, &timeRange{late.UnixMilli(), late.UnixMilli()}, b.lateAll)
	r, ok := b.resumePoint()
	require.True(t, ok)
	require.Equal(t, late.UnixMilli(), r)

	b.sendLate(context.Background())
	names := map[string]bool{}
	var sb labels.ScratchBuilder
	for _, req := range received() {
		for _, series := range req.Timeseries {
			names[series.ToLabels(&sb, nil).Get(model.MetricNameLabel)] = true
		}
	}
	require.Equal(t, map[string]bool{"bantay_first": true, "bantay_second": true, "bantay_third": true}, names,
		"every series over the range, the third (never late) too")
	r, ok = b.resumePoint()
	require.True(t, ok)
	require.Greater(t, r, late.UnixMilli(), "sent: the point moves on")
}
