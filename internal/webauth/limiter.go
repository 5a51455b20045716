package webauth

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTrackedAddrs bounds the failure limiter's memory. Beyond it, new
// addresses share one bucket: a flood from many addresses then slows
// password checks for all of them, never the collector's memory.
const maxTrackedAddrs = 10000

// failLimiter is a token bucket of failed password checks per client
// address. Only failures take from it, so a user who types the password
// right is never slowed, however often they log in.
type failLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu       sync.Mutex
	by       map[netip.Addr]*rate.Limiter
	overflow *rate.Limiter
}

func newFailLimiter(c LimitConfig, max int) *failLimiter {
	l := &failLimiter{limit: rate.Every(c.Every), burst: c.Burst, max: max, by: map[netip.Addr]*rate.Limiter{}}
	l.overflow = rate.NewLimiter(l.limit, l.burst)
	return l
}

// bucket returns addr's bucket, creating it. When the map is full, buckets
// that have refilled (the same as a new one) are forgotten first. Caller
// holds mu.
func (l *failLimiter) bucket(addr netip.Addr, now time.Time) *rate.Limiter {
	if b, ok := l.by[addr]; ok {
		return b
	}
	if !addr.IsValid() {
		return l.overflow
	}
	if len(l.by) >= l.max {
		for a, b := range l.by {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.by, a)
			}
		}
		if len(l.by) >= l.max {
			return l.overflow
		}
	}
	b := rate.NewLimiter(l.limit, l.burst)
	l.by[addr] = b
	return b
}

// begin reserves one failure from addr's budget for a password check
// about to run, so concurrent guesses cannot all pass before the first
// one fails. It returns how long to wait if there is none left (nothing
// reserved then), else done, to be called with the check's outcome: a
// right password gives the reservation back.
func (l *failLimiter) begin(addr netip.Addr, now time.Time) (done func(failed bool), wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(addr, now)
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return func(failed bool) {
		if !failed {
			l.mu.Lock()
			r.CancelAt(now) // at the reservation's own time: rate only gives back what has not been acted on
			l.mu.Unlock()
		}
	}, 0
}

// clientAddr is the TCP peer. X-Forwarded-For is not trusted: anyone could
// send one to get a fresh budget.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
