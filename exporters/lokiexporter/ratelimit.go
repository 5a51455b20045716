package lokiexporter

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// overflowKey is the shared bucket for sources beyond max_sources.
const overflowKey = "(other)"

// bucket is a token bucket in its GCRA form: instead of a token count it
// keeps the theoretical arrival time tat of the next conforming event,
// which is exact in integer nanoseconds (a float token count drifts, and a
// token due at 120 s would arrive at 120.000001 s). The bucket is full
// when tat is not after now; it refuses an event when more than burst-1
// emission intervals are already booked ahead of now.
type bucket struct {
	tat time.Time
}

// allow books one event at now if the bucket has a token.
func (b *bucket) allow(now time.Time, every time.Duration, burst int) bool {
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	// Never more than a full burst booked ahead: a clock stepped back by
	// an hour must not silence the source for an hour.
	if limit := now.Add(time.Duration(burst) * every); tat.After(limit) {
		tat = limit
		b.tat = limit
	}
	if tat.Sub(now) > time.Duration(burst-1)*every {
		return false
	}
	b.tat = tat.Add(every)
	return true
}

// full reports whether the bucket holds all burst tokens at now.
func (b *bucket) full(now time.Time) bool { return !b.tat.After(now) }

// source is the limiter's state for one key.
type source struct {
	bucket
	// suppressed counts events refused since the last summary, from
	// windowStart on.
	suppressed  int64
	windowStart time.Time
	// attrs are the label attributes of the latest suppressed event, so
	// that the summary lands in the same Loki stream as the events it
	// stands for.
	attrs map[string]string
}

// suppression summarises the events refused for one source.
type suppression struct {
	Key   string
	Count int64
	// From and To bound the window the events were refused in.
	From, To time.Time
	Attrs    map[string]string
}

// limiter is a per-source token bucket that remembers what it refused.
// It is safe for concurrent use.
type limiter struct {
	every    time.Duration // one token per every
	burst    int
	maxKeys  int
	interval time.Duration

	mu      sync.Mutex
	sources map[string]*source
}

func newLimiter(cfg RateLimitConfig) *limiter {
	return &limiter{
		every:    time.Duration(float64(time.Minute) / cfg.EventsPerMinute),
		burst:    cfg.Burst,
		maxKeys:  cfg.MaxSources,
		interval: cfg.SummaryInterval,
		sources:  map[string]*source{},
	}
}

// admit decides whether the event from key at now may pass. attrs is
// called only when the event is refused, to remember its labels. When an
// event passes after some were refused (the source calmed down), the
// pending summary is returned so it can be sent right before the event.
func (l *limiter) admit(key string, now time.Time, attrs func() map[string]string) (bool, *suppression) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sources[key]
	if !ok {
		if len(l.sources) >= l.maxKeys {
			key = overflowKey
			s = l.sources[key]
		}
		if s == nil {
			s = &source{}
			l.sources[key] = s
		}
	}
	if s.allow(now, l.every, l.burst) {
		return true, l.take(key, s, now)
	}
	if s.suppressed == 0 {
		s.windowStart = now
	}
	s.suppressed++
	s.attrs = attrs()
	return false, nil
}

// take returns and resets key's pending summary, if any.
func (l *limiter) take(key string, s *source, now time.Time) *suppression {
	if s.suppressed == 0 {
		return nil
	}
	sum := &suppression{Key: key, Count: s.suppressed, From: s.windowStart, To: now, Attrs: s.attrs}
	s.suppressed, s.attrs = 0, nil
	return sum
}

// due returns the summaries of sources whose suppression window is at
// least one interval old (or all pending ones when all is set, at
// shutdown), and forgets sources that are idle: nothing pending and a full
// bucket, so that forgetting them changes nothing.
func (l *limiter) due(now time.Time, all bool) []suppression {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []suppression
	for key, s := range l.sources {
		if s.suppressed > 0 && (all || now.Sub(s.windowStart) >= l.interval) {
			out = append(out, *l.take(key, s, now))
		}
		if s.suppressed == 0 && s.full(now) {
			delete(l.sources, key)
		}
	}
	slices.SortFunc(out, func(a, b suppression) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// tracked is the number of sources the limiter holds state for.
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}
