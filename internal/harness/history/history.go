// Package history writes days of probe data as Prometheus TSDB blocks, the
// way a store that had ingested them would hold them on disk, so that
// Bantay's store and a real Prometheus can open the same history
// (docs/BENCHMARKS.md, "Queries over 7 days"). The label sets are given (a
// live store's, so that they are exactly what the pipeline stores); the
// values follow each probe target's measurements: one answered probe or a
// timeout per interval, cumulative like the probe's OTLP counters.
package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Options say which time range is written and how.
type Options struct {
	// Start and End bound the samples; blocks are cut at multiples of
	// BlockDuration (the TSDB's head block), as a store cuts them.
	Start, End time.Time
	// Interval is the probes' export interval (15 s by default in the probe).
	Interval time.Duration
	// BlockDuration is the range of each block written (2 h, the TSDB's).
	BlockDuration time.Duration
	// Workers append in parallel within a block.
	Workers int
	Logger  *slog.Logger
}

// Validate names the first bad field.
func (o Options) Validate() error {
	switch {
	case !o.End.After(o.Start):
		return fmt.Errorf("end %v: must be after start %v", o.End, o.Start)
	case o.Interval < time.Second:
		return fmt.Errorf("interval %v: want at least 1s", o.Interval)
	case o.BlockDuration < time.Hour || o.BlockDuration%time.Hour != 0:
		return fmt.Errorf("block duration %v: want whole hours", o.BlockDuration)
	case o.Workers < 1:
		return fmt.Errorf("workers %d: want at least 1", o.Workers)
	}
	return nil
}

// Stats is what Write wrote.
type Stats struct {
	Series  int
	Samples int64
	Blocks  int
	Elapsed time.Duration
}

// role is what a series counts, from its name and labels.
type role uint8

const (
	roleConstant role = iota // target_info and counters that stay at 0 (duplicates, reordered, other failure reasons)
	roleBucket
	roleSum
	roleCount
	roleAttempts
	roleTimeouts
	roleJitter
	roleJitterPairs
)

// target is one probe target on one uplink: the series that share its
// labels once the name, le and reason are left out, and its cumulative
// state, which carries from block to block.
type target struct {
	series []series
	rng    *mrand.Rand
	baseMs float64

	count, attempts, timeouts, pairs uint64
	sum, jitter, last                float64
	buckets                          []uint64 // per bound of metricmodel.LatencyBounds and +Inf, non-cumulative
}

type series struct {
	lset   labels.Labels
	role   role
	bucket int // index into metricmodel.LatencyBounds (its length: +Inf) for roleBucket
	ref    storage.SeriesRef
}

// Write writes the history of every series in lsets into dir as blocks of
// o.BlockDuration, and returns what it wrote.
func Write(ctx context.Context, dir string, lsets []labels.Labels, o Options) (Stats, error) {
	if err := o.Validate(); err != nil {
		return Stats{}, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	targets, err := groupTargets(lsets)
	if err != nil {
		return Stats{}, err
	}
	began := time.Now()
	st := Stats{Series: len(lsets)}
	step := o.Interval.Milliseconds()
	block := o.BlockDuration.Milliseconds()
	first := o.Start.UnixMilli() - o.Start.UnixMilli()%step + step
	end := o.End.UnixMilli()
	for lo := first - first%block; lo < end; lo += block {
		from, to := max(lo, first), min(lo+block, end)
		if from >= to {
			continue
		}
		n, err := writeBlock(ctx, dir, targets, from, to, step, o)
		if err != nil {
			return st, err
		}
		st.Samples += n
		st.Blocks++
	}
	st.Elapsed = time.Since(began)
	return st, nil
}

// appendSlice bounds how far in time one commit reaches: the head refuses
// samples older than half its block range behind its newest one, so every
// target moves through the block a slice at a time, together.
const appendSlice = 30 * time.Minute

// writeBlock appends the samples of [from, to) at every step and flushes
// them as one block.
func writeBlock(ctx context.Context, dir string, targets []*target, from, to, step int64, o Options) (int64, error) {
	w, err := tsdb.NewBlockWriter(o.Logger, dir, o.BlockDuration.Milliseconds())
	if err != nil {
		return 0, err
	}
	defer w.Close()
	for i := range targets {
		for j := range targets[i].series {
			targets[i].series[j].ref = 0 // refs are the block's head's
		}
	}
	var samples int64
	for lo := from; lo < to; lo += appendSlice.Milliseconds() {
		hi := min(lo+appendSlice.Milliseconds(), to)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for k := range o.Workers {
			wg.Go(func() {
				// The head's appenders may be taken concurrently.
				n, err := appendTargets(func() storage.Appender { return w.Appender(ctx) }, targets, k, o.Workers, lo, hi, step)
				mu.Lock()
				defer mu.Unlock()
				samples += n
				errs = append(errs, err)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	if _, err := w.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush block at %v: %w", time.UnixMilli(from).UTC(), err)
	}
	return samples, nil
}

// appendTargets appends [from, to) of every worker-th target, committing
// after each (an appender ends with its commit) so that the buffer stays
// one target's samples.
func appendTargets(appender func() storage.Appender, targets []*target, worker, workers int, from, to, step int64) (int64, error) {
	var n int64
	for i := worker; i < len(targets); i += workers {
		tg := targets[i]
		app := appender()
		for ts := from; ts < to; ts += step {
			tg.measure(ts)
			for j := range tg.series {
				s := &tg.series[j]
				ref, err := app.Append(s.ref, s.lset, ts, tg.value(s))
				if err != nil {
					_ = app.Rollback()
					return n, fmt.Errorf("series %s at %d: %w", s.lset, ts, err)
				}
				s.ref = ref
				n++
			}
		}
		if err := app.Commit(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// lossRate is the share of probes that time out (the load tool's too).
const lossRate = 0.005

// measure takes the target's probe at ts (ms): a timeout, or a log-normal
// round-trip time around the path's base, ±30 % over each UTC day, so that
// 24 h and 7 d graphs have a shape.
func (t *target) measure(ts int64) {
	t.attempts++
	if t.rng.Float64() < lossRate {
		t.timeouts++
		return
	}
	day := float64(24 * time.Hour / time.Millisecond)
	v := t.baseMs * (1 + 0.3*math.Sin(2*math.Pi*float64(ts)/day)) * math.Exp(0.25*t.rng.NormFloat64())
	if t.count > 0 {
		t.jitter += math.Abs(v - t.last)
		t.pairs++
	}
	t.last = v
	t.count++
	t.sum += v
	b, _ := slices.BinarySearch(metricmodel.LatencyBounds, v)
	t.buckets[b]++
}

func (t *target) value(s *series) float64 {
	switch s.role {
	case roleBucket:
		var c uint64
		for _, n := range t.buckets[:s.bucket+1] {
			c += n
		}
		return float64(c)
	case roleSum:
		return t.sum
	case roleCount:
		return float64(t.count)
	case roleAttempts:
		return float64(t.attempts)
	case roleTimeouts:
		return float64(t.timeouts)
	case roleJitter:
		return t.jitter
	case roleJitterPairs:
		return float64(t.pairs)
	}
	if s.lset.Get(model.MetricNameLabel) == "target_info" {
		return 1
	}
	return 0
}

// groupTargets sorts the series into their targets: the series whose labels
// are the same once __name__, le and reason are dropped.
func groupTargets(lsets []labels.Labels) ([]*target, error) {
	byKey := map[uint64]*target{}
	var out []*target
	for _, ls := range lsets {
		s := series{lset: ls}
		name := ls.Get(model.MetricNameLabel)
		switch {
		case strings.HasSuffix(name, "_bucket"):
			le := ls.Get("le")
			if le == "+Inf" {
				s.bucket = len(metricmodel.LatencyBounds)
			} else {
				v, err := strconv.ParseFloat(le, 64)
				i, found := slices.BinarySearch(metricmodel.LatencyBounds, v)
				if err != nil || !found {
					return nil, fmt.Errorf("series %s: le %q is not one of the probe's bounds", ls, le)
				}
				s.bucket = i
			}
			s.role = roleBucket
		case strings.HasSuffix(name, "_sum"):
			s.role = roleSum
		case strings.HasSuffix(name, "_count"):
			s.role = roleCount
		case name == "bantay_probe_attempts_total":
			s.role = roleAttempts
		case name == "bantay_probe_failures_total" && ls.Get("reason") == "timeout":
			s.role = roleTimeouts
		case name == "bantay_probe_jitter_milliseconds_total":
			s.role = roleJitter
		case name == "bantay_probe_jitter_pairs_total":
			s.role = roleJitterPairs
		}
		// The same labels without the name (which the hash leaves out), le
		// and reason: one target's series.
		key, _ := ls.HashWithoutLabels(nil, "le", "reason")
		t, ok := byKey[key]
		if !ok {
			t = &target{rng: mrand.New(mrand.NewPCG(key, 0)), buckets: make([]uint64, len(metricmodel.LatencyBounds)+1),
				baseMs: 3 + float64(key%60)}
			byKey[key] = t
			out = append(out, t)
		}
		t.series = append(t.series, s)
	}
	return out, nil
}

// TargetSeries is what the store holds for one probe target on one uplink,
// in the probe's shape (metricmodel.SeriesPerTarget series), each with the
// target's labels (target and path labels, no __name__): for benchmarks and
// tests that need a fleet's history without running a fleet first.
func TargetSeries(target labels.Labels) []labels.Labels {
	with := func(name string, extra ...string) labels.Labels {
		b := labels.NewBuilder(target).Set(model.MetricNameLabel, name)
		for i := 0; i < len(extra); i += 2 {
			b.Set(extra[i], extra[i+1])
		}
		return b.Labels()
	}
	out := make([]labels.Labels, 0, metricmodel.SeriesPerTarget)
	for _, le := range metricmodel.LatencyBounds {
		out = append(out, with("network_latency_milliseconds_bucket", "le", strconv.FormatFloat(le, 'f', -1, 64)))
	}
	out = append(out, with("network_latency_milliseconds_bucket", "le", "+Inf"),
		with("network_latency_milliseconds_sum"), with("network_latency_milliseconds_count"),
		with("bantay_probe_attempts_total"))
	for _, r := range metricmodel.FailureReasons {
		out = append(out, with("bantay_probe_failures_total", "reason", r))
	}
	for _, name := range []string{"bantay_probe_duplicates_total", "bantay_probe_reordered_total",
		"bantay_probe_jitter_milliseconds_total", "bantay_probe_jitter_pairs_total"} {
		out = append(out, with(name))
	}
	return out
}

// Compact compacts the blocks in dir as a TSDB whose largest block range is
// maxBlock does (Prometheus's is a tenth of its retention), so that the
// history is laid out as days of running would have left it.
func Compact(ctx context.Context, dir string, maxBlock time.Duration, logger *slog.Logger) (blocks int, err error) {
	opts := tsdb.DefaultOptions()
	opts.MaxBlockDuration = maxBlock.Milliseconds()
	opts.RetentionDuration = 0 // keep everything written
	db, err := tsdb.Open(dir, logger, nil, opts, nil)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	if err := db.Compact(ctx); err != nil {
		return 0, err
	}
	return len(db.Blocks()), nil
}
