package prober

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
)

// MaxCount bounds the probes of one round (config.MaxCount).
const MaxCount = config.MaxCount

// RoundSpec is how a round is taken: Count probes, one every Interval (the
// window is (Count-1)·Interval + Timeout), each answered within Timeout.
// Probes are sent on schedule whether or not the previous one was
// answered, as fping and SmokePing send them, so a slow answer does not
// stretch the round.
type RoundSpec struct {
	Count    int
	Interval time.Duration
	Timeout  time.Duration
}

// RoundSpecFor is the round a validated target takes each run: its count
// of probes, config.RoundSpacing apart, each within its timeout.
func RoundSpecFor(t config.Target) RoundSpec {
	n := max(t.Count, 1)
	return RoundSpec{Count: n, Interval: config.RoundSpacing(t.Interval, t.Timeout, n), Timeout: t.Timeout}
}

func (s RoundSpec) check() error {
	switch {
	case s.Count < 1 || s.Count > MaxCount:
		return fmt.Errorf("count %d is not 1..%d", s.Count, MaxCount)
	case s.Timeout <= 0:
		return fmt.Errorf("timeout %s must be positive", s.Timeout)
	case s.Interval <= 0 && s.Count > 1:
		return fmt.Errorf("interval %s must be positive", s.Interval)
	}
	return nil
}

// Round is what one round measured.
type Round struct {
	// Sent counts the probes attempted. A probe that could not even be
	// sent (a name that does not resolve, icmp not permitted) counts as
	// sent and lost, with its reason, so loss is never hidden by an error.
	Sent int
	// Results are the answered probes in the order they were sent.
	Results []Result
	// Duplicates counts replies to a probe that was already answered;
	// Reordered counts replies that arrived after the reply to a later
	// probe. Only sequenced methods (icmp, udp) can see either; both are
	// separate from loss (a duplicate never makes up for a lost probe).
	Duplicates, Reordered int
	// Failures counts the unanswered probes by reason; Errors holds the
	// first error of each reason, for a person to read.
	Failures map[Reason]int
	Errors   map[Reason]error
}

// Received is the number of probes answered in time.
func (r *Round) Received() int { return len(r.Results) }

// LossRatio is the share of sent probes not answered in time.
func (r *Round) LossRatio() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Sent-r.Received()) / float64(r.Sent)
}

// RTTs are the answered probes' latencies in send order.
func (r *Round) RTTs() []time.Duration {
	out := make([]time.Duration, len(r.Results))
	for i, res := range r.Results {
		out[i] = res.RTT
	}
	return out
}

// Phases are the mean duration of each http phase over the answered
// probes that went through it, in phase order; nil for other methods.
func (r *Round) Phases() []Phase {
	var out []Phase
	for _, name := range PhaseNames {
		var sum time.Duration
		n := 0
		for _, res := range r.Results {
			for _, ph := range res.Phases {
				if ph.Name == name {
					sum += ph.Duration
					n++
				}
			}
		}
		if n > 0 {
			out = append(out, Phase{Name: name, Duration: sum / time.Duration(n)})
		}
	}
	return out
}

func (r *Round) fail(err error) {
	reason := Classify(err)
	if r.Failures == nil {
		r.Failures, r.Errors = map[Reason]int{}, map[Reason]error{}
	}
	r.Failures[reason]++
	if r.Errors[reason] == nil {
		r.Errors[reason] = err
	}
}

// Stats summarise a round's RTTs.
type Stats struct {
	Min, P50, P90, P99, Max, Mean time.Duration
	// Jitter is the mean absolute difference between the RTTs of
	// consecutive answered probes, in send order: RFC 3550's interarrival
	// difference D applied to RTTs, without its 1/16 smoothing (a round is
	// too short for it), as mtr's Javg. It is a spread of consecutive
	// samples, so a path whose RTT drifts slowly has little jitter.
	// HasJitter is false with fewer than two answers.
	Jitter    time.Duration
	HasJitter bool
	// JitterSum and JitterPairs are the sum and the number of those
	// differences (Jitter = JitterSum / JitterPairs), which the agent
	// exports as counters so that jitter over any window adds up.
	JitterSum   time.Duration
	JitterPairs int
}

// Stats returns the round's summary, or false when nothing was answered
// (there is no RTT to report: never a zero).
func (r *Round) Stats() (Stats, bool) {
	rtts := r.RTTs()
	if len(rtts) == 0 {
		return Stats{}, false
	}
	var s Stats
	var sum time.Duration
	for i, d := range rtts {
		sum += d
		if i > 0 {
			s.JitterSum += (d - rtts[i-1]).Abs()
		}
	}
	s.Mean = sum / time.Duration(len(rtts))
	if s.JitterPairs = len(rtts) - 1; s.JitterPairs > 0 {
		s.Jitter, s.HasJitter = s.JitterSum/time.Duration(s.JitterPairs), true
	}
	slices.Sort(rtts)
	s.Min, s.Max = rtts[0], rtts[len(rtts)-1]
	s.P50, s.P90, s.P99 = nearestRank(rtts, 50), nearestRank(rtts, 90), nearestRank(rtts, 99)
	return s, true
}

// nearestRank is the p-th percentile of sorted by the nearest-rank method:
// always a value that was measured, never an interpolation between two.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// TakeRound takes one round of p. Methods that number their probes (icmp,
// udp) send the whole round on one socket and match replies by sequence
// number; the others run one Probe per slot, concurrently when the
// interval is shorter than an answer. It returns an error only for a bad
// spec; every failure of the target is in the Round.
func TakeRound(ctx context.Context, p Prober, spec RoundSpec) (*Round, error) {
	if err := spec.check(); err != nil {
		return nil, fmt.Errorf("%s round: %w", p.Method(), err)
	}
	if s, ok := p.(sequenced); ok {
		return sequencedRound(ctx, s, spec), nil
	}
	return probeRound(ctx, p, spec), nil
}

// failedRound is a round of count probes none of which could be sent, for
// err (a target that does not resolve, a socket this host may not open).
func failedRound(count int, err error) *Round {
	r := &Round{Sent: count}
	for range count {
		r.fail(err)
	}
	return r
}

// sleepUntil waits for t or for ctx; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func probeRound(ctx context.Context, p Prober, spec RoundSpec) *Round {
	type outcome struct {
		res Result
		err error
	}
	outcomes := make([]outcome, spec.Count)
	start := time.Now()
	var wg sync.WaitGroup
	sent := 0
	for i := range spec.Count {
		if i > 0 && !sleepUntil(ctx, start.Add(time.Duration(i)*spec.Interval)) {
			break
		}
		sent++
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, spec.Timeout)
			defer cancel()
			res, err := p.Probe(pctx)
			outcomes[i] = outcome{res, err}
		})
	}
	wg.Wait()
	r := &Round{Sent: sent}
	for _, o := range outcomes[:sent] {
		if o.err != nil {
			r.fail(o.err)
		} else {
			r.Results = append(r.Results, o.res)
		}
	}
	return r
}

// sequenced is a method that numbers its probes, so that one socket can
// carry a whole round and a reply can be matched to its probe whatever
// order it arrives in.
type sequenced interface {
	// openRound prepares a socket for count probes (resolving the target
	// first, so that DNS time stays out of every RTT).
	openRound(ctx context.Context, count int) (roundConn, error)
}

// roundConn is one round's socket.
type roundConn interface {
	// send sends probe i of the round.
	send(i int) error
	// recv blocks for the next reply that belongs to this round and
	// returns its probe's index and when it arrived: the monotonic clock
	// at once after the read, and the kernel's send timestamp of the
	// request and receive timestamp of the reply where the socket gives
	// them (zero otherwise). Anything that is not a reply of
	// this round is skipped inside recv. After close it returns
	// net.ErrClosed. Other errors are about the path and recv may be
	// called again: with i ≥ 0 an answer that failed that probe (an ICMP
	// destination unreachable quoting it), with i < 0 one the socket
	// cannot tie to a probe (a UDP socket's ECONNREFUSED).
	recv() (i int, mono, kernelSent, kernel time.Time, err error)
	close() error
}

// rttOf is a reply's RTT. The kernel's receive timestamp (wall clock)
// leaves out the time the reply waited for this goroutine to be scheduled,
// which on a busy probe box can be more than a LAN's RTT, and its send
// timestamp the time between reading the clock and the request reaching
// the driver; each is used only when the result is consistent with the
// monotonic measurement (positive and no larger), so a wall-clock step
// between send and receive falls back to the monotonic clock instead of
// producing a negative or inflated RTT.
func rttOf(sent, mono, kernelSent, kernel time.Time) time.Duration {
	rtt := mono.Sub(sent)
	if kernel.IsZero() {
		return rtt
	}
	for _, from := range []time.Time{kernelSent, sent.Round(0)} {
		if k := kernel.Sub(from); !from.IsZero() && k > 0 && k <= rtt {
			return k
		}
	}
	return rtt
}

// probeSequenced is Probe for a sequenced method: a round of one, waiting
// for the answer until ctx ends.
func probeSequenced(ctx context.Context, s sequenced) (Result, error) {
	conn, err := s.openRound(ctx, 1)
	if err != nil {
		return Result{}, err
	}
	defer conn.close()
	stop := context.AfterFunc(ctx, func() { conn.close() })
	defer stop()
	sent := time.Now()
	if err := conn.send(0); err != nil {
		return Result{}, err
	}
	_, mono, kernelSent, kernel, err := conn.recv()
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{}, err
	}
	return Result{RTT: rttOf(sent, mono, kernelSent, kernel)}, nil
}

func sequencedRound(ctx context.Context, s sequenced, spec RoundSpec) *Round {
	conn, err := s.openRound(ctx, spec.Count)
	if err != nil {
		return failedRound(spec.Count, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.close() })
	defer stop()

	var (
		mu       sync.Mutex
		sentAt   = make([]time.Time, spec.Count)
		rtts     = make([]time.Duration, spec.Count)
		inTime   = make([]bool, spec.Count)
		answered = make([]bool, spec.Count)
		sendErr  = make([]error, spec.Count)
		r        = &Round{}
		// probeErr is an error answering one probe; pathErr is the latest
		// error the socket reported for no probe in particular (an ICMP
		// port unreachable on UDP), the reason of the probes left
		// unanswered without one of their own.
		probeErr  = make([]error, spec.Count)
		pathErr   error
		highest   = -1
		remaining = spec.Count
		allIn     = make(chan struct{})
	)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			i, mono, kernelSent, kernel, err := conn.recv()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			mu.Lock()
			switch {
			case err != nil && i >= 0 && i < spec.Count:
				probeErr[i] = err
			case err != nil:
				pathErr = err
			case answered[i]:
				r.Duplicates++
			case sentAt[i].IsZero():
				// A reply to a probe not sent yet is not ours (recv checks
				// the round's token); ignore it rather than invent an RTT.
			default:
				answered[i] = true
				if i < highest {
					r.Reordered++
				}
				highest = max(highest, i)
				if rtt := rttOf(sentAt[i], mono, kernelSent, kernel); rtt <= spec.Timeout {
					rtts[i], inTime[i] = rtt, true
				}
				if remaining--; remaining == 0 {
					close(allIn)
				}
			}
			mu.Unlock()
		}
	}()

	start := time.Now()
	var last time.Time
	for i := range spec.Count {
		if i > 0 && !sleepUntil(ctx, start.Add(time.Duration(i)*spec.Interval)) {
			break
		}
		mu.Lock()
		sentAt[i] = time.Now()
		last = sentAt[i]
		mu.Unlock()
		r.Sent++
		if err := conn.send(i); err != nil {
			sendErr[i] = err
		}
	}
	// Wait for the last probe's timeout, or less when every probe is in;
	// duplicates still in flight then are not counted, which a round's
	// deadline could not promise either.
	wait := time.NewTimer(time.Until(last.Add(spec.Timeout)))
	select {
	case <-wait.C:
	case <-allIn:
	case <-ctx.Done():
	}
	wait.Stop()
	conn.close()
	<-recvDone

	for i := range r.Sent {
		switch {
		case sendErr[i] != nil:
			r.fail(sendErr[i])
		case inTime[i]:
			r.Results = append(r.Results, Result{RTT: rtts[i]})
		case ctx.Err() != nil:
			r.fail(ctx.Err())
		case answered[i]:
			r.fail(fmt.Errorf("probe %d answered after the %s timeout: %w", i, spec.Timeout, context.DeadlineExceeded))
		case probeErr[i] != nil:
			r.fail(probeErr[i])
		case pathErr != nil:
			r.fail(pathErr)
		default:
			r.fail(fmt.Errorf("probe %d not answered within %s: %w", i, spec.Timeout, context.DeadlineExceeded))
		}
	}
	return r
}
