package lokiexporter

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// overflowKey is the shared bucket for sources beyond max_sources.
const overflowKey = "(other)"

// source is the limiter's state for one key.
type source struct {
	lim *rate.Limiter
	// seen is the latest time the source was asked about, to notice a
	// clock stepped back (see allow).
	seen time.Time
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

// allow takes a token at now if there is one. The limiter is asked with
// the exporter's clock. A clock stepped back (a test clock, or times
// without a monotonic reading) would leave rate.Limiter measuring refills
// from its last booking in the future, silencing the source for as long
// as the clock lost; rebasing it at now keeps its tokens and refills from
// now instead.
func (s *source) allow(now time.Time) bool {
	if now.Before(s.seen) {
		s.lim.SetLimitAt(now, s.lim.Limit())
	}
	s.seen = now
	return s.lim.AllowN(now, 1)
}

// full reports whether the source holds all its tokens at now, so that
// forgetting it changes nothing.
func (s *source) full(now time.Time) bool {
	return s.lim.TokensAt(now) >= float64(s.lim.Burst())
}

// limiter is a per-source token bucket (golang.org/x/time/rate) that
// remembers what it refused. It is safe for concurrent use.
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
			s = &source{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
			l.sources[key] = s
		}
	}
	if s.allow(now) {
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
