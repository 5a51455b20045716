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
// that have refilled (the same as a new one) are forgotten first.
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

// wait is how long addr must wait before its next password check; 0 if
// it may check now.
func (l *failLimiter) wait(addr netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	tokens := l.bucket(addr, now).TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
}

// fail takes one failure from addr's budget.
func (l *failLimiter) fail(addr netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(addr, now).AllowN(now, 1)
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
