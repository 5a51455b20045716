// Package logthrottle keeps a component's warnings about bad input visible
// without flooding the collector's log: at most one line per key per
// interval, each carrying how many lines for its key were held back since
// the last one. Components count every occurrence in a metric; the log line
// is the pointer to it, not the tally.
package logthrottle

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// MaxKeys bounds what a Logger remembers. Keys may come from outside (a
// probe id a misbehaving client makes up), so past it keys idle for an
// interval are forgotten, and if none is, a new key is not logged until one
// is (its occurrences are still in the component's metric).
const MaxKeys = 4096

// SuppressedField names the count of lines held back for the key.
const SuppressedField = "similar_lines_not_logged"

// Logger writes warnings through zap, at most one per key per interval.
type Logger struct {
	log   *zap.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]state
}

type state struct {
	at         time.Time
	suppressed int
}

// New returns a Logger that lets each key through once per every.
func New(log *zap.Logger, every time.Duration) *Logger {
	// The caller of Warn, not this package, is where the line comes from.
	return &Logger{log: log.WithOptions(zap.AddCallerSkip(1)), every: every, now: time.Now, last: map[string]state{}}
}

// SetClock replaces the clock (tests run on a fake one).
func (l *Logger) SetClock(now func() time.Time) { l.now = now }

// Warn logs msg with fields, and the count of lines held back for key since
// the last one, unless key was logged less than the interval ago. It
// reports whether it logged.
func (l *Logger) Warn(key, msg string, fields ...zap.Field) bool {
	now := l.now()
	l.mu.Lock()
	st, seen := l.last[key]
	if seen && now.Sub(st.at) < l.every {
		st.suppressed++
		l.last[key] = st
		l.mu.Unlock()
		return false
	}
	if !seen && len(l.last) >= MaxKeys && !l.forgetIdleLocked(now) {
		l.mu.Unlock()
		return false
	}
	l.last[key] = state{at: now}
	l.mu.Unlock()
	l.log.Warn(msg, append(fields, zap.Int(SuppressedField, st.suppressed))...)
	return true
}

// forgetIdleLocked drops the keys not logged for an interval and reports
// whether that made room.
func (l *Logger) forgetIdleLocked(now time.Time) bool {
	for k, st := range l.last {
		if now.Sub(st.at) >= l.every {
			delete(l.last, k)
		}
	}
	return len(l.last) < MaxKeys
}
