// Package logthrottle keeps a component's warnings about bad input visible
// without flooding the collector's log: at most one line per key per
// interval. Components count every occurrence in a metric; the log line is
// the pointer to it, not the tally.
package logthrottle

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// Logger writes warnings through zap, at most one per key per interval.
// Keys must come from a bounded set (reasons, label names): it remembers
// each key it has seen.
type Logger struct {
	log   *zap.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

// New returns a Logger that lets each key through once per every.
func New(log *zap.Logger, every time.Duration) *Logger {
	return &Logger{log: log, every: every, now: time.Now, last: map[string]time.Time{}}
}

// Warn logs msg with fields unless key was logged less than the interval
// ago. It reports whether it logged.
func (l *Logger) Warn(key, msg string, fields ...zap.Field) bool {
	now := l.now()
	l.mu.Lock()
	last, seen := l.last[key]
	ok := !seen || now.Sub(last) >= l.every
	if ok {
		l.last[key] = now
	}
	l.mu.Unlock()
	if ok {
		l.log.Warn(msg, fields...)
	}
	return ok
}
