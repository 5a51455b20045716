package otlpload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// MaxDuration bounds one load run.
const MaxDuration = time.Hour

// Load sends a fleet's exports: each probe uplink (Stream) exports every
// Interval, phased evenly over the interval like a fleet whose probes
// started at different times, or, with Interval 0, as fast as the
// collector acknowledges. Each stream waits for its answer before its next
// export, as the probe's exporter does; an export whose time comes while
// the previous one is still unanswered is skipped and counted (the
// collector could not keep up with the offered rate). Refused exports are
// not retried: the next one carries the cumulative counts again.
type Load struct {
	Streams []*Stream
	Sender  Sender
	// Interval is each stream's export interval; 0 sends flat out.
	Interval time.Duration
	// Concurrency bounds the exports in flight.
	Concurrency int
	// Duration bounds the run (at most MaxDuration).
	Duration time.Duration
	// Timeout bounds each export.
	Timeout time.Duration
	// OnAck, if set, is called after every acknowledged export with its
	// sample time, from the sending goroutine: it must not block.
	OnAck func(s *Stream, sample time.Time)

	offered, acked, skipped, sentPts atomic.Int64

	mu      sync.Mutex
	refused map[string]int64
	example map[string]string
	byProbe map[string]int64
	first   time.Time
	last    time.Time
}

// Counts are a run's running totals, in points.
type Counts struct {
	Offered, Sent, Acked, Skipped int64
}

// Counts returns the totals so far; safe while the load runs.
func (l *Load) Counts() Counts {
	return Counts{Offered: l.offered.Load(), Sent: l.sentPts.Load(), Acked: l.acked.Load(), Skipped: l.skipped.Load()}
}

// Report is what a finished run sent and what the collector said, in points.
type Report struct {
	Counts
	// Refused counts refused points by Outcome.Reason; Examples holds the
	// first message of each reason.
	Refused  map[string]int64
	Examples map[string]string
	// AckedByProbe counts acknowledged points per probe id.
	AckedByProbe map[string]int64
	// FirstSample and LastSample bound the sample times of the acknowledged points.
	FirstSample, LastSample time.Time
	Elapsed                 time.Duration
}

// Validate names the first bad field.
func (l *Load) Validate() error {
	switch {
	case len(l.Streams) == 0:
		return errors.New("no streams")
	case l.Sender == nil:
		return errors.New("no sender")
	case l.Interval < 0:
		return fmt.Errorf("interval %v: want > 0, or 0 for flat out", l.Interval)
	case l.Concurrency < 1:
		return fmt.Errorf("concurrency %d: want at least 1", l.Concurrency)
	case l.Duration <= 0 || l.Duration > MaxDuration:
		return fmt.Errorf("duration %v: want > 0 and at most %v", l.Duration, MaxDuration)
	case l.Timeout <= 0:
		return fmt.Errorf("timeout %v: want > 0", l.Timeout)
	}
	return nil
}

// Run sends until Duration or ctx ends the run, then waits for the exports
// in flight (each bounded by Timeout).
func (l *Load) Run(ctx context.Context) (Report, error) {
	if err := l.Validate(); err != nil {
		return Report{}, fmt.Errorf("otlpload: %w", err)
	}
	l.refused, l.example, l.byProbe = map[string]int64{}, map[string]string{}, map[string]int64{}
	ctx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	slots := make(chan struct{}, l.Concurrency)
	started := time.Now()
	var wg sync.WaitGroup
	for i, s := range l.Streams {
		// Streams are phased evenly over one interval.
		var phase time.Duration
		if l.Interval > 0 {
			phase = time.Duration(int64(l.Interval) * int64(i) / int64(len(l.Streams)))
		}
		wg.Go(func() { l.stream(ctx, s, started.Add(phase), slots) })
	}
	wg.Wait()
	res := Report{Counts: l.Counts(), Refused: l.refused, Examples: l.example, AckedByProbe: l.byProbe,
		FirstSample: l.first, LastSample: l.last, Elapsed: time.Since(started)}
	return res, nil
}

func (l *Load) stream(ctx context.Context, s *Stream, next time.Time, slots chan struct{}) {
	pts := int64(s.Points())
	end, _ := ctx.Deadline()
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		if l.Interval > 0 {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		l.offered.Add(pts)
		acked := l.send(ctx, s, pts)
		<-slots
		if l.Interval == 0 && !acked {
			// Flat out, a collector that refuses or is gone would
			// otherwise be hammered in a tight loop; the SDK backs off too.
			select {
			case <-ctx.Done():
				return
			case <-time.After(refusalBackoff):
			}
		}
		if l.Interval > 0 {
			// Export times that passed while this one was unanswered are
			// offered and skipped, never sent.
			next = next.Add(l.Interval)
			for now := time.Now(); next.Before(now) && next.Before(end); next = next.Add(l.Interval) {
				l.offered.Add(pts)
				l.skipped.Add(pts)
			}
			timer.Reset(time.Until(next))
		}
	}
}

// refusalBackoff is how long a flat-out stream waits after an export that was not acknowledged.
const refusalBackoff = 10 * time.Millisecond

// send makes one export and reports whether it was acknowledged. Its
// timeout is its own, not the run's: an export sent before the end is
// answered, so nothing acknowledged goes uncounted.
func (l *Load) send(ctx context.Context, s *Stream, pts int64) bool {
	md, sample := s.Export(time.Now())
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.Timeout)
	out := l.Sender.Send(reqCtx, md, s.Probe.Token)
	cancel()
	l.sentPts.Add(pts)
	if out.Acked {
		l.acked.Add(pts)
		if l.OnAck != nil {
			l.OnAck(s, sample)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !out.Acked {
		l.refused[out.Reason] += pts
		if _, ok := l.example[out.Reason]; !ok {
			l.example[out.Reason] = out.Message
		}
		return false
	}
	l.byProbe[s.Probe.ID] += pts
	if l.first.IsZero() || sample.Before(l.first) {
		l.first = sample
	}
	if sample.After(l.last) {
		l.last = sample
	}
	return true
}
