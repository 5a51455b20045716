package agent

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

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
	// phases are the latency attribute sets of an http target's phases
	// (nil for other methods); https says whether answers carry a
	// certificate.
	phases map[string]metric.MeasurementOption
	https  bool
	// consecutive failures and the reason last logged ("" while not logged
	// as failing): only changes are logged, so a dead target is one log
	// line, not one per interval.
	consecutive  int
	loggedReason prober.Reason

	// Every failure carries an exemplar (recording.go), and so does a
	// round's slowest answer when it is at least slow. traces are the
	// trace ids of the last round's failures by reason, for the log.
	slow   time.Duration
	traces map[prober.Reason]trace.TraceID
}

func newJob(t config.Target, p prober.Prober, inst *instruments, logger *slog.Logger) *job {
	base := []attribute.KeyValue{
		attribute.String(metricmodel.AttrTarget, t.Name),
		attribute.String(metricmodel.AttrDstCity, t.DstCity),
		attribute.String(metricmodel.AttrMethod, t.Method),
	}
	with := func(kv attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(append(base[:3:3], kv)...))
	}
	j := &job{
		target: t, spec: prober.RoundSpecFor(t), prober: p, inst: inst, logger: logger,
		attrs:    metric.WithAttributeSet(attribute.NewSet(base...)),
		failures: make(map[prober.Reason]metric.MeasurementOption),
	}
	// Export every counter of the target at 0 from the start. A counter
	// series that first appears with value 1 has no earlier sample to
	// subtract from, so rate()/increase() in the loss alerts (and the
	// heatmap's deltas) would never see a path's first failure of that
	// kind, or its first duplicate.
	bg := context.Background()
	for _, name := range metricmodel.FailureReasons {
		r := prober.Reason(name)
		j.failures[r] = with(attribute.String(metricmodel.AttrReason, name))
		inst.failures.Add(bg, 0, j.failures[r])
	}
	inst.attempts.Add(bg, 0, j.attrs)
	inst.duplicates.Add(bg, 0, j.attrs)
	inst.reordered.Add(bg, 0, j.attrs)
	inst.jitter.Add(bg, 0, j.attrs)
	inst.jitterPairs.Add(bg, 0, j.attrs)
	if t.Method == config.MethodHTTP {
		// The total keeps no phase attribute, so every method's latency
		// series are selected alike ({phase=""}) and stay the series they
		// were before phases existed.
		j.phases = map[string]metric.MeasurementOption{}
		for _, ph := range prober.PhaseNames {
			j.phases[ph] = with(attribute.String(metricmodel.AttrPhase, ph))
		}
		j.https = strings.HasPrefix(strings.ToLower(t.Address), "https:")
	}
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
	first := time.Duration(rng.Int64N(int64(interval)))
	due := time.Now().Add(first)
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		// Late starts are the probe's own trouble (a busy CPU, a stalled
		// process), not the path's: measured from the monotonic clock.
		j.inst.lateness.Record(context.Background(), max(start.Sub(due), 0).Seconds(), j.inst.here)
		j.once(ctx)
		next := max(jittered(interval, rng)-time.Since(start), 0)
		due = time.Now().Add(next)
		timer.Reset(next)
	}
}

func jittered(interval time.Duration, rng *rand.Rand) time.Duration {
	f := 1 - jitterFraction + 2*jitterFraction*rng.Float64()
	return time.Duration(float64(interval) * f)
}

// once takes one run (a round of the target's count probes) and records it.
func (j *job) once(ctx context.Context) {
	j.inst.inFlight.Add(context.Background(), 1, j.inst.here)
	r, err := prober.TakeRound(ctx, j.prober, j.spec)
	j.inst.inFlight.Add(context.Background(), -1, j.inst.here)
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
	j.record(r)
	j.logState(r)
}

// record adds a round to the metrics: every probe is an attempt, every
// answered probe a latency (and for http one per phase), every other probe
// a failure by reason; duplicates, reordering and the jitter of
// consecutive answers are added as counts.
func (j *job) record(r *prober.Round) {
	// The measurement context must not be the (possibly cancelled) probe
	// context; recording is local and never blocks.
	rec := context.Background()
	j.inst.attempts.Add(rec, int64(r.Sent), j.attrs)
	clear(j.traces)
	for reason, n := range r.Failures {
		if n <= 0 {
			continue
		}
		ctx, id := mark("probe failure")
		if j.traces == nil {
			j.traces = map[prober.Reason]trace.TraceID{}
		}
		j.traces[reason] = id
		j.inst.failures.Add(ctx, int64(n), j.failures[reason])
	}
	slowest := -1
	for i, res := range r.Results {
		if res.RTT >= j.slow && (slowest < 0 || res.RTT > r.Results[slowest].RTT) {
			slowest = i
		}
	}
	for i, res := range r.Results {
		ctx := rec
		if i == slowest {
			ctx, _ = mark("slow probe")
		}
		j.inst.latency.Record(ctx, ms(res.RTT), j.attrs)
		for _, ph := range res.Phases {
			j.inst.latency.Record(rec, ms(ph.Duration), j.phases[ph.Name])
		}
	}
	j.inst.duplicates.Add(rec, int64(r.Duplicates), j.attrs)
	j.inst.reordered.Add(rec, int64(r.Reordered), j.attrs)
	if s, ok := r.Stats(); ok && s.HasJitter {
		j.inst.jitter.Add(rec, ms(s.JitterSum), j.attrs)
		j.inst.jitterPairs.Add(rec, int64(s.JitterPairs), j.attrs)
	}
	if j.phases != nil {
		j.recordHTTP(r)
	}
}

// recordHTTP sets the status gauge from the round's last answer, or, in a
// round without one, from an unexpected status (a 500 must show as 500,
// not as the 200 before it), and the certificate expiry from an https
// answer. A round with neither leaves both as they were: nothing new is
// known.
func (j *job) recordHTTP(r *prober.Round) {
	rec := context.Background()
	var status *prober.StatusError
	if n := r.Received(); n > 0 {
		last := r.Results[n-1]
		j.inst.statusCode.Record(rec, int64(last.StatusCode), j.attrs)
		if j.https && !last.CertNotAfter.IsZero() {
			j.inst.certExpiry.Record(rec, float64(last.CertNotAfter.UnixNano())/1e9, j.attrs)
		}
	} else if errors.As(r.Errors[prober.ReasonHTTPStatus], &status) {
		j.inst.statusCode.Record(rec, int64(status.Got), j.attrs)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logState logs a target's state changes: failing after failLogAfter
// rounds without an answer, succeeding again.
func (j *job) logState(r *prober.Round) {
	if r.Received() == 0 {
		reason, err := mainFailure(r)
		j.consecutive++
		if j.consecutive >= failLogAfter && reason != j.loggedReason {
			// This round's failures carry the trace id as their exemplar,
			// so the line leads to them in the store.
			j.logger.Warn("probe failing", "reason", reason, "consecutive_failures", j.consecutive, "error", err, "trace_id", j.traces[reason].String())
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
