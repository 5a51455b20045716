package store

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"golang.org/x/time/rate"
)

// Remote write after a crash (docs/SCALING.md). Prometheus's remote write,
// which the Server runs unchanged, tails the WAL from the moment the process
// starts and skips every sample stamped before that moment. Two kinds of
// acknowledged samples would then never reach a remote: those not yet
// shipped when the collector died (its remote-write lag at the kill), and
// those a probe's queue delivers after the restart with older timestamps.
// The backfill sends both from the TSDB through remote write, and keeps on
// disk the resume point: the sample time before which every remote has
// every acknowledged sample.
const (
	// backfillMargin is how late a sample may arrive and still count as
	// in time. The WAL tail ships in WAL (arrival) order, so a sample older
	// than this when it is appended may be shipped after newer ones: the
	// backfill sends it too (a harmless duplicate, see sendRange) and the
	// resume point waits for it. The resume point trails the remotes'
	// newest acknowledged sample by twice this: one margin for the samples
	// in time but older than the newest, one for the WAL tail's shards,
	// which ship independently within a batch deadline of each other.
	backfillMargin = time.Minute
	// tailStartSlack: the WAL watcher takes its start time in its own
	// goroutine once the configuration is applied; the backfill counts
	// everything stamped up to this much later as skipped by the tail.
	tailStartSlack = 10 * time.Second
	// backfillMaxAge bounds the restart backfill: a resume point older than
	// this (a remote down for hours before the crash) is resumed from
	// now − backfillMaxAge. Receivers refuse samples older than their
	// out-of-order window anyway (Thanos's --tsdb.out-of-order.time-window).
	backfillMaxAge = 2 * time.Hour
	// A TSDB query of every series reads a window of sample time sized to
	// hold about backfillWindowSamples samples (from backfillMinWindow to
	// backfillMaxWindow, adapted after each read). The samples are copied
	// out and the querier closed before they are sent, so a slow remote
	// never holds the TSDB's read lock (which a reopen after a full disk
	// waits for); the copy is what the backfill holds in memory.
	backfillWindowSamples = 50_000
	backfillMinWindow     = 100 * time.Millisecond
	backfillMaxWindow     = time.Minute
	// backfillRate bounds what the backfill sends, in samples per second
	// over all remotes, so that a restart after a long lag does not starve
	// the live WAL tail of the remote's capacity.
	backfillRate = 20_000
	// backfillInterval is how often late samples are sent and the resume
	// point written.
	backfillInterval = 2 * time.Second
	// maxLateSeries bounds the late samples remembered by series; late
	// samples of further series widen one range sent for every series.
	maxLateSeries = 100_000
)

// timeRange is a closed range of sample times in milliseconds.
type timeRange struct{ mint, maxt int64 }

func (r *timeRange) widen(t int64) {
	r.mint, r.maxt = min(r.mint, t), max(r.maxt, t)
}

// lateSeries is a series with late samples in rng, waiting to be sent.
type lateSeries struct {
	labels labels.Labels
	rng    timeRange
}

// remoteBackfill sends, from the TSDB through remote write, what
// Prometheus's WAL tail does not: at start the range from the resume point
// on disk to the tail's start, and then every late sample (stamped before
// the tail's start, or older than backfillMargin when appended).
type remoteBackfill struct {
	db         *DB
	logger     *slog.Logger
	mark       *watermarkFile
	lowestSent func() int64 // ms; the oldest of the remote queues' newest sent sample, 0 until every queue has sent
	limiter    *rate.Limiter
	tailStart  int64 // ms; samples stamped at or before it are the backfill's
	now        func() time.Time

	mu         sync.Mutex
	remotes    []*backfillRemote
	restart    *timeRange // what the restart backfill still owes; nil once sent, or with no resume point
	late       map[uint64]*lateSeries
	maxLate    int        // maxLateSeries; smaller in tests
	lateAll    *timeRange // late samples beyond maxLate series: every series in this range
	lateMin    int64      // the oldest late sample waiting
	sendingMin int64      // the oldest late sample of the pass being sent
	persisted  int64      // the resume point on disk, 0 for none

	samples *prometheus.CounterVec
}

const (
	reasonRestart = "restart"
	reasonLate    = "late"
)

// newRemoteBackfill reads the resume point in dir and registers the
// backfill's metrics. lowestSent is Prometheus's remote storage's.
func newRemoteBackfill(db *DB, dir string, lowestSent func() int64, reg prometheus.Registerer, logger *slog.Logger) (*remoteBackfill, error) {
	b := &remoteBackfill{
		db: db, logger: logger, lowestSent: lowestSent,
		mark: &watermarkFile{dir: dir, failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_remote_write_watermark_failures_total",
			Help: "Times the remote-write resume point file could not be read at start (the backfill then resends the longest range) or written (the older point stays in force).",
		})},
		limiter:    rate.NewLimiter(backfillRate, maxBackfillBatch),
		now:        time.Now,
		late:       map[uint64]*lateSeries{},
		maxLate:    maxLateSeries,
		lateMin:    math.MaxInt64,
		sendingMin: math.MaxInt64,
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_remote_write_backfill_samples_total",
			Help: "Samples the remote-write backfill read from the TSDB and sent, by reason (restart: acknowledged before a crash and not shipped; late: stamped before the WAL tail's start or appended later than the margin) and result (sent, refused by the remote, dropped by write_relabel_configs).",
		}, []string{"reason", "result"}),
	}
	for _, reason := range []string{reasonRestart, reasonLate} {
		for _, result := range []string{resultSent, resultRefused, resultDropped} {
			b.samples.WithLabelValues(reason, result)
		}
	}
	b.tailStart = timestamp.FromTime(b.now().Add(tailStartSlack))
	b.mark.removeStale()
	resume, err := b.mark.read()
	switch {
	case err != nil:
		// A resume point that cannot be read is resumed from as far back as
		// the backfill goes: duplicates cost bandwidth, a gap loses data.
		resume = timestamp.FromTime(b.now().Add(-backfillMaxAge))
		logger.Error("remote-write resume point unreadable; backfilling the longest range", "err", err, "from", timestamp.Time(resume))
		b.mark.failures.Inc()
	case resume == 0:
		// A first start: what the TSDB holds from before is not resumed,
		// but from now on it is, even if the collector dies before remote
		// write ships anything (late samples hold the point back).
		resume = timestamp.FromTime(b.now())
		if err := b.mark.write(resume); err != nil {
			logger.Error("writing the remote-write resume point", "err", err)
			b.mark.failures.Inc()
		}
		b.persisted = resume
	}
	if b.persisted == 0 {
		b.restart = &timeRange{mint: max(resume, timestamp.FromTime(b.now().Add(-backfillMaxAge))), maxt: b.tailStart}
		b.persisted = resume
	}
	cs := []prometheus.Collector{b.samples, b.mark.failures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bantay_remote_write_watermark_age_seconds",
			Help: "How far the remote-write resume point on disk is behind now: every acknowledged sample older than this has reached every remote. Grows while a remote is slow or down; 0 without remote_write.",
		}, b.watermarkAge),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bantay_remote_write_backfill_pending_series",
			Help: "Series with late samples the remote-write backfill has yet to send.",
		}, func() float64 { b.mu.Lock(); defer b.mu.Unlock(); return float64(len(b.late)) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *remoteBackfill) watermarkAge() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.persisted == 0 || len(b.remotes) == 0 {
		return 0
	}
	return b.now().Sub(timestamp.Time(b.persisted)).Seconds()
}

// applyConfig makes clients for the remotes of cfg, as the WAL tail has.
func (b *remoteBackfill) applyConfig(cfg *config.Config) error {
	remotes, err := newBackfillRemotes(cfg)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.remotes = remotes
	b.mu.Unlock()
	return nil
}

// run sends the restart range, then late samples every backfillInterval,
// writing the resume point as it goes, until ctx ends.
func (b *remoteBackfill) run(ctx context.Context) {
	// The restart range ends at the tail's start; wait for it to pass so
	// that everything stamped in it is in the TSDB.
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(timestamp.Time(b.tailStart))):
	}
	b.sendRestart(ctx)
	tick := time.NewTicker(backfillInterval)
	defer tick.Stop()
	for {
		b.sendLate(ctx)
		if ctx.Err() != nil {
			return // late samples left unsent must keep the resume point back
		}
		b.persist()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sendRestart sends the range between the resume point and the tail's
// start, moving the resume point as each window is sent.
func (b *remoteBackfill) sendRestart(ctx context.Context) {
	b.mu.Lock()
	r := b.restart
	b.mu.Unlock()
	if r == nil {
		return
	}
	start := b.now()
	b.logger.Info("remote-write backfill after restart", "from", timestamp.Time(r.mint), "to", timestamp.Time(r.maxt))
	sent, err := b.sendWindows(ctx, reasonRestart, *r, func(next int64) {
		b.mu.Lock()
		b.restart.mint = next
		b.mu.Unlock()
		b.persist()
	})
	if err != nil { // only ctx ends it; the resume point stays where it got to
		return
	}
	b.mu.Lock()
	b.restart = nil
	b.mu.Unlock()
	b.logger.Info("remote-write backfill after restart done", "samples", sent, "took", b.now().Sub(start))
}

// sendWindows sends every series over rng, one window of sample time at a
// time, calling sent with the start of what is left after each.
func (b *remoteBackfill) sendWindows(ctx context.Context, reason string, rng timeRange, sent func(next int64)) (int, error) {
	window, total := time.Second.Milliseconds(), 0
	for mint := rng.mint; mint <= rng.maxt; {
		maxt := min(mint+window-1, rng.maxt)
		n, err := b.sendRange(ctx, reason, timeRange{mint, maxt}, labels.EmptyLabels())
		total += n
		if err != nil {
			return total, err
		}
		mint = maxt + 1
		sent(mint)
		// The next window holds about backfillWindowSamples if the
		// samples are as dense as in this one.
		window = max(backfillMinWindow.Milliseconds(), min(backfillMaxWindow.Milliseconds(), window*backfillWindowSamples/max(int64(n), 1)))
	}
	return total, nil
}

// sendLate sends the late samples gathered since the last pass.
func (b *remoteBackfill) sendLate(ctx context.Context) {
	b.mu.Lock()
	late, all := b.late, b.lateAll
	b.sendingMin, b.lateMin = b.lateMin, math.MaxInt64
	b.late, b.lateAll = map[uint64]*lateSeries{}, nil
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.sendingMin = math.MaxInt64; b.mu.Unlock() }()
	if all != nil {
		if _, err := b.sendWindows(ctx, reasonLate, *all, func(int64) {}); err != nil {
			return
		}
	}
	for _, ls := range late {
		if all != nil && all.mint <= ls.rng.mint && ls.rng.maxt <= all.maxt {
			continue // sent with every series above
		}
		if _, err := b.sendRange(ctx, reasonLate, ls.rng, ls.labels); err != nil {
			return
		}
	}
}

// resumePoint is the sample time before which every remote has every
// acknowledged sample, and false while there is none to write.
func (b *remoteBackfill) resumePoint() (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.persisted
	if b.restart != nil {
		r = b.restart.mint
	} else if sent := b.lowestSent(); sent > 0 {
		r = sent - 2*backfillMargin.Milliseconds()
	}
	r = min(r, b.lateMin, b.sendingMin)
	if b.lateAll != nil {
		r = min(r, b.lateAll.mint)
	}
	return r, r > 0 && r != math.MaxInt64
}

// persist writes the resume point when it moved.
func (b *remoteBackfill) persist() {
	r, ok := b.resumePoint()
	b.mu.Lock()
	unchanged := r == b.persisted
	b.mu.Unlock()
	if !ok || unchanged {
		return
	}
	if err := b.mark.write(r); err != nil {
		b.mark.failures.Inc()
		b.logger.Error("writing the remote-write resume point", "err", err)
		return
	}
	b.mu.Lock()
	b.persisted = r
	b.mu.Unlock()
}

// lateBatch gathers one OTLP request's late samples; they are the
// backfill's once the request commits. A nil *lateBatch gathers nothing.
type lateBatch struct {
	b       *remoteBackfill
	cutoff  int64
	samples []lateSample
}

type lateSample struct {
	labels labels.Labels
	t      int64
}

// newBatch is nil on a nil backfill (a store without a Server).
func (b *remoteBackfill) newBatch() *lateBatch {
	if b == nil {
		return nil
	}
	cutoff := max(b.tailStart, timestamp.FromTime(b.now().Add(-backfillMargin)))
	return &lateBatch{b: b, cutoff: cutoff}
}

// observe notes an appended sample if it is late.
func (l *lateBatch) observe(ls labels.Labels, t int64) {
	if l != nil && t <= l.cutoff {
		l.samples = append(l.samples, lateSample{ls, t})
	}
}

// committed hands the request's late samples to the backfill.
func (l *lateBatch) committed() {
	if l == nil || len(l.samples) == 0 {
		return
	}
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.remotes) == 0 {
		return // nothing to send them to; a remote added later starts at its start
	}
	for _, s := range l.samples {
		b.lateMin = min(b.lateMin, s.t)
		h := s.labels.Hash()
		if ls := b.late[h]; ls != nil && labels.Equal(ls.labels, s.labels) {
			ls.rng.widen(s.t)
			continue
		}
		if len(b.late) < b.maxLate && b.late[h] == nil {
			b.late[h] = &lateSeries{labels: s.labels, rng: timeRange{s.t, s.t}}
			continue
		}
		if b.lateAll == nil {
			b.logger.Warn("late samples of more series than the backfill remembers one by one; sending every series over their range", "series", b.maxLate)
			b.lateAll = &timeRange{s.t, s.t}
		}
		b.lateAll.widen(s.t)
	}
}
