package agent

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/prober"
)

// failLogAfter is how many consecutive failures make a target "failing" in
// the log. One lost packet on a 3%-loss path is data for the histogram and
// the loss ratio, not news for the operator.
const failLogAfter = 3

// jitterFraction spreads runs ±10% around the interval so that probes
// started together (a fleet rebooted by one power cut) do not fire in
// lock-step and hit reflectors and collectors as a wave.
const jitterFraction = 0.1

// job is one (uplink, target) pair on its own schedule.
type job struct {
	target config.Target
	spec   prober.RoundSpec
	prober prober.Prober
	inst   *instruments
	logger *slog.Logger

	attrs    metric.MeasurementOption
	failures map[prober.Reason]metric.MeasurementOption
	// consecutive failures and the reason last logged ("" while not logged
	// as failing): only changes are logged, so a dead target is one log
	// line, not one per interval.
	consecutive  int
	loggedReason prober.Reason
}

func newJob(t config.Target, p prober.Prober, inst *instruments, logger *slog.Logger) *job {
	base := []attribute.KeyValue{
		attribute.String(metricmodel.AttrTarget, t.Name),
		attribute.String(metricmodel.AttrDstCity, t.DstCity),
		attribute.String(metricmodel.AttrMethod, t.Method),
	}
	j := &job{
		target: t, spec: prober.RoundSpecFor(t), prober: p, inst: inst, logger: logger,
		attrs:    metric.WithAttributeSet(attribute.NewSet(base...)),
		failures: make(map[prober.Reason]metric.MeasurementOption),
	}
	for _, name := range metricmodel.FailureReasons {
		r := prober.Reason(name)
		j.failures[r] = metric.WithAttributeSet(attribute.NewSet(append(base[:3:3], attribute.String(metricmodel.AttrReason, name))...))
		// Export every reason at 0 from the start. A counter series that
		// first appears with value 1 has no earlier sample to subtract from,
		// so rate()/increase() in the loss alerts (and the heatmap's deltas)
		// would never see a path's first failure of that kind.
		inst.failures.Add(context.Background(), 0, j.failures[r])
	}
	inst.attempts.Add(context.Background(), 0, j.attrs)
	return j
}

// newRand gives each schedule its own generator, so schedules need no lock.
func newRand() *rand.Rand {
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

// run fires the probe after a random offset within one interval and then
// every interval ±10%. Runs are sequential: the next one is scheduled only
// after the previous returned, and each is bounded by its round's window
// (config.RoundSpacing keeps it shorter than the interval), so a slow
// target can never pile runs up.
func (j *job) run(ctx context.Context, rng *rand.Rand) {
	interval := j.target.Interval
	timer := time.NewTimer(time.Duration(rng.Int64N(int64(interval))))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		j.once(ctx)
		next := jittered(interval, rng) - time.Since(start)
		timer.Reset(max(next, 0))
	}
}

func jittered(interval time.Duration, rng *rand.Rand) time.Duration {
	f := 1 - jitterFraction + 2*jitterFraction*rng.Float64()
	return time.Duration(float64(interval) * f)
}

// once takes one run (a round of the target's count probes, one by
// default) and records it: every probe is an attempt, every answered
// probe a latency, every other probe a failure by reason.
func (j *job) once(ctx context.Context) {
	r, err := prober.TakeRound(ctx, j.prober, j.spec)
	if err != nil {
		// The config was validated, so the spec is sound; say so loudly
		// if that ever stops being true rather than measure nothing quietly.
		j.logger.Error("cannot take a round", "error", err)
		return
	}
	if ctx.Err() != nil {
		// Interrupted by shutdown: neither a success nor a failure of the path.
		return
	}
	// The measurement context must not be the (possibly cancelled) probe
	// context; recording is local and never blocks.
	rec := context.Background()
	j.inst.attempts.Add(rec, int64(r.Sent), j.attrs)
	for reason, n := range r.Failures {
		j.inst.failures.Add(rec, int64(n), j.failures[reason])
	}
	for _, d := range r.RTTs() {
		j.inst.latency.Record(rec, float64(d)/float64(time.Millisecond), j.attrs)
	}
	if r.Received() == 0 {
		reason, err := mainFailure(r)
		j.consecutive++
		if j.consecutive >= failLogAfter && reason != j.loggedReason {
			j.logger.Warn("probe failing", "reason", reason, "consecutive_failures", j.consecutive, "error", err)
			j.loggedReason = reason
		} else {
			j.logger.Debug("probe failed", "reason", reason, "error", err)
		}
		return
	}
	if j.loggedReason != "" {
		s, _ := r.Stats()
		j.logger.Info("probe succeeding again", "latency", s.P50, "after_failures", j.consecutive)
	}
	j.consecutive, j.loggedReason = 0, ""
}

// mainFailure is the reason most of a failed round's probes failed for
// (the first in name order on a tie, so the log does not flap) and its
// first error.
func mainFailure(r *prober.Round) (prober.Reason, error) {
	var best prober.Reason
	for reason, n := range r.Failures {
		if n > r.Failures[best] || n == r.Failures[best] && reason < best {
			best = reason
		}
	}
	return best, r.Errors[best]
}
