package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Why a failed WAL write stops all acknowledgements until the TSDB is
// reopened: a write that fails half-way (ENOSPC) can leave the first
// fragment of a record in the WAL page, and the next record written after
// it makes the segment unreadable at that point ("unexpected full record").
// On the next start tsdb.Open repairs the WAL by deleting everything after
// the torn record, so every point acknowledged after the failure would be
// lost (Prometheus issues 7835, 7245, 13027). Cutting a new segment does not
// help: the repair deletes every later segment too, and series created in
// the head by the failed commit may have no record in the WAL at all, so
// later samples of theirs would be dropped on replay as unknown series.
// Reopening the TSDB runs that repair while nothing acknowledged lies
// behind the torn record, and rebuilds the head from what the WAL holds.

const (
	causeNoSpace = "no_space"
	causeIO      = "io"
)

// errUnwritable refuses appends while the store cannot write its WAL.
var errUnwritable = errors.New("store cannot write its WAL (disk full or I/O error); retry later")

// errStale refuses the commit of an appender opened on a TSDB that has since
// been reopened; its samples were never written, and the sender retries.
var errStale = errors.New("store reopened its TSDB during this append; retry")

// gate is the Commit of every appender the store hands out (the OTLP
// requests', the rules manager's, the scrape manager's). Commits are
// serialised under commitMu so that once one fails, no later one can be
// acknowledged with its records behind the torn one.
func (s *Store) gate(gen uint64, app storage.AppenderTransaction) func() error {
	// An appender of a TSDB since reopened is not rolled back: its head is
	// closed (or closing) and discarded, with whatever the appender holds.
	refuse := func(err error) error {
		if gen == s.db.gen.Load() {
			_ = app.Rollback() // frees the head's isolation and pending-commit state
		}
		return err
	}
	return func() error {
		if !s.writable.Load() { // refuse without waiting behind a reopen
			return refuse(errUnwritable)
		}
		s.commitMu.Lock()
		defer s.commitMu.Unlock()
		if gen != s.db.gen.Load() {
			return errStale
		}
		if !s.writable.Load() {
			return refuse(errUnwritable)
		}
		start := time.Now()
		err := app.Commit()
		s.commitDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			s.commitFailed(err)
			return err
		}
		return nil
	}
}

// commitFailed counts a failed commit and, on the transition, refuses
// further appends and starts the recovery. The caller holds commitMu.
func (s *Store) commitFailed(err error) {
	cause := causeIO
	if errors.Is(err, syscall.ENOSPC) {
		cause = causeNoSpace
	}
	s.commitFailures.WithLabelValues(cause).Inc()
	if !s.writable.CompareAndSwap(true, false) {
		return
	}
	s.writableGauge.Set(0)
	s.logger.Error("store cannot write its WAL: refusing appends (retryably) and reporting not ready until it can; "+
		"it reopens the TSDB to repair the WAL once the disk has room",
		"cause", cause, "err", err, "dir", s.cfg.Dir)
	s.recovery.Add(1)
	go s.recoverWrites()
}

// recoverWrites reopens the TSDB as soon as there is room to repair its WAL,
// then accepts appends again.
func (s *Store) recoverWrites() {
	defer s.recovery.Done()
	t := time.NewTicker(s.cfg.RecoveryInterval)
	defer t.Stop()
	waiting := false // log the wait for space once, not every interval
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		free, need, err := s.spaceForReopen()
		if err != nil || free < need {
			if !waiting {
				s.logger.Warn("store waiting for free space to repair its WAL", "dir", s.cfg.Dir,
					"free_bytes", free, "needed_bytes", need, "err", err)
				waiting = true
			}
			continue
		}
		if err := s.reopen(); err != nil {
			return // the store is closing
		}
		s.reopens.WithLabelValues("success").Inc()
		s.writable.Store(true)
		s.writableGauge.Set(1)
		s.logger.Info("store writable again: TSDB reopened, WAL repaired; accepting appends", "dir", s.cfg.Dir)
		return
	}
}

// spaceForReopen is the free space in the data directory and what a reopen
// needs: the repair rewrites the segment holding the torn record (the last
// or the one before it, when the failure cut a new one), plus room for the
// first writes after it.
func (s *Store) spaceForReopen() (free, need uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.Dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", s.cfg.Dir, err)
	}
	free = st.Bavail * uint64(st.Bsize)
	walDir := filepath.Join(s.cfg.Dir, "wal")
	_, last, err := wlog.Segments(walDir)
	if err != nil {
		return free, 0, err
	}
	var largest int64
	for i := max(last-1, 0); i <= last; i++ {
		if fi, err := os.Stat(wlog.SegmentName(walDir, i)); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	return free, uint64(largest) + 4<<20, nil
}

// reopen closes the TSDB and opens it again, which repairs the WAL; it
// fails only when the store closes meanwhile. Commits
// wait (they are refused before they get here) and readers wait for the
// lock; the queries in flight finish first, because closing unmaps the
// head chunks they read.
func (s *Store) reopen() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if err := s.db.db.Close(); err != nil {
		// Expected when the final page flush hits the same full disk; the
		// repair below handles what it left.
		s.logger.Warn("closing the TSDB after a failed write", "err", err)
	}
	// A memory snapshot taken by that Close starts the replay after the
	// torn record, so Open would skip the repair and leave it mid-WAL for
	// the next checkpoint to trip over: replay the whole WAL instead.
	if err := tsdb.DeleteChunkSnapshots(s.cfg.Dir, math.MaxInt, math.MaxInt); err != nil {
		s.logger.Warn("deleting the chunk snapshot before the repair", "err", err)
	}
	for {
		db, stats, err := openTSDB(s.cfg.Dir, s.opts, s.tsdbReg, s.logger)
		if err == nil {
			s.db.db, s.db.stats = db, stats
			s.db.gen.Add(1)
			return nil
		}
		// The TSDB is closed: readers wait on the lock rather than read a
		// closed head, so keep trying until it opens or the store closes.
		s.reopens.WithLabelValues("failure").Inc()
		s.logger.Error("reopening the TSDB failed; retrying", "err", err)
		select {
		case <-s.stop:
			return err
		case <-time.After(s.cfg.RecoveryInterval):
		}
	}
}
