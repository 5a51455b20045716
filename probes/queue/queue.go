// Package queue is bantay-probe's store-and-forward queue: a bounded,
// on-disk FIFO of serialized OTLP export requests that the collector did not
// acknowledge, kept in a bbolt file so it survives a restart and a crash
// (every append and removal is one fsynced bbolt transaction; a process
// killed mid-write leaves the last committed state).
//
// Items are ordered by a bucket sequence number, so the oldest comes first
// whatever the wall clock did. Limits are on payload bytes and on age; the
// oldest items are dropped first, and every drop is counted by cause in the
// same file, so the counts survive a restart too.
package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Cause is why an item left the queue without being delivered.
type Cause string

// Drop causes.
const (
	// CauseSize: the queue was over Options.MaxBytes; the oldest items
	// made room for a newer one.
	CauseSize Cause = "size"
	// CauseAge: the item was older than Options.MaxAge, beyond what the
	// collector's out-of-order window accepts.
	CauseAge Cause = "age"
	// CauseRefused: the collector refused the item permanently (it can
	// never be stored, so retrying it would block the queue).
	CauseRefused Cause = "refused"
)

// Causes lists every drop cause, for reporting zero counts too.
var Causes = []Cause{CauseSize, CauseAge, CauseRefused}

var (
	itemsBucket   = []byte("items")
	droppedBucket = []byte("dropped")
)

// headerSize is the item value's prefix: measured time (Unix ns) and the
// number of data points, each a big-endian uint64.
const headerSize = 16

// Options bound a queue.
type Options struct {
	// MaxBytes bounds the payload bytes kept (the file itself may be
	// larger: bbolt reuses freed pages but never shrinks the file).
	MaxBytes int64
	// MaxAge drops items measured longer ago than this.
	MaxAge time.Duration
	// Now is the clock ages are measured with; nil is time.Now.
	Now func() time.Time
}

// Item is one queued request.
type Item struct {
	ID      uint64
	Time    time.Time // when its data was measured
	Points  int
	Payload []byte
}

// Stats describe the queue now.
type Stats struct {
	Requests int
	Points   int64
	Bytes    int64
	// Oldest is the measured time of the oldest item; zero when empty.
	Oldest time.Time
	// Dropped counts drops by cause over the life of the file.
	Dropped map[Cause]uint64
}

// Queue is safe for concurrent use. One process at a time may open a file.
type Queue struct {
	db   *bolt.DB
	opts Options

	mu sync.Mutex
	// st is the committed state: figures change only when a bbolt
	// transaction commits, so a failed write never skews them.
	st state
}

// state is the queue's figures; Stats.Dropped is owned by the state.
type state struct{ Stats }

func (s state) clone() state {
	s.Dropped = maps.Clone(s.Dropped)
	return s
}

// lockTimeout is how long Open waits for another process's lock on the
// file before saying so.
const lockTimeout = time.Second

// Open opens or creates the queue file at path (and its directory).
func Open(path string, opts Options) (*Queue, error) {
	if opts.MaxBytes <= 0 || opts.MaxAge <= 0 {
		return nil, fmt.Errorf("queue %s: max bytes and max age must be positive", path)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("queue %s is in use by another process (another bantay-probe with the same queue.dir?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	q := &Queue{db: db, opts: opts, st: state{Stats{Dropped: map[Cause]uint64{}}}}
	err = q.update(func(tx *bolt.Tx, st *state) error {
		items, err := tx.CreateBucketIfNotExists(itemsBucket)
		if err != nil {
			return err
		}
		dropped, err := tx.CreateBucketIfNotExists(droppedBucket)
		if err != nil {
			return err
		}
		if err := dropped.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				st.Dropped[Cause(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		}); err != nil {
			return err
		}
		return items.ForEach(func(k, v []byte) error {
			it, err := decode(k, v)
			if err != nil {
				return err
			}
			st.add(it, 1)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	return q, nil
}

// update runs fn in one bbolt write transaction on a copy of the figures,
// which replace the committed ones only if the transaction commits.
func (q *Queue) update(fn func(tx *bolt.Tx, st *state) error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	next := q.st.clone()
	err := q.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx, &next); err != nil {
			return err
		}
		next.Oldest = time.Time{}
		if k, v := tx.Bucket(itemsBucket).Cursor().First(); k != nil {
			it, err := decode(k, v)
			if err != nil {
				return err
			}
			next.Oldest = it.Time
		}
		return nil
	})
	if err == nil {
		q.st = next
	}
	return err
}

// Append queues payload, measured at t with the given number of points,
// first dropping what is too old and, oldest first, what no longer fits.
// A payload larger than MaxBytes on its own is dropped (and counted) at once.
func (q *Queue) Append(t time.Time, points int, payload []byte) error {
	return q.update(func(tx *bolt.Tx, st *state) error {
		if err := q.expire(tx, st); err != nil {
			return err
		}
		size := int64(len(payload))
		if size > q.opts.MaxBytes {
			return st.countDrop(tx, CauseSize)
		}
		b := tx.Bucket(itemsBucket)
		c := b.Cursor()
		for k, v := c.First(); k != nil && st.Bytes+size > q.opts.MaxBytes; k, v = c.First() {
			if err := st.remove(tx, c, k, v, CauseSize); err != nil {
				return err
			}
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v := make([]byte, headerSize+len(payload))
		binary.BigEndian.PutUint64(v, uint64(t.UnixNano()))
		binary.BigEndian.PutUint64(v[8:], uint64(points))
		copy(v[headerSize:], payload)
		if err := b.Put(key(seq), v); err != nil {
			return err
		}
		st.add(Item{Time: t, Points: points, Payload: payload}, 1)
		return nil
	})
}

// Peek returns up to n of the oldest items, oldest first, after dropping
// the expired ones. The items stay queued until Remove.
func (q *Queue) Peek(n int) ([]Item, error) {
	var out []Item
	err := q.update(func(tx *bolt.Tx, st *state) error {
		if err := q.expire(tx, st); err != nil {
			return err
		}
		c := tx.Bucket(itemsBucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			it, err := decode(k, v)
			if err != nil {
				return err
			}
			// v is only valid inside the transaction.
			it.Payload = bytes.Clone(it.Payload)
			out = append(out, it)
		}
		return nil
	})
	return out, err
}

// Remove takes the item with id out of the queue: delivered when cause is
// empty, otherwise dropped and counted under cause. Removing an item that
// is no longer queued (dropped meanwhile) does nothing.
func (q *Queue) Remove(id uint64, cause Cause) error {
	return q.update(func(tx *bolt.Tx, st *state) error {
		c := tx.Bucket(itemsBucket).Cursor()
		k, v := c.Seek(key(id))
		if k == nil || binary.BigEndian.Uint64(k) != id {
			return nil
		}
		return st.remove(tx, c, k, v, cause)
	})
}

// Stats returns the queue's current figures.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st.clone().Stats
}

// Close closes the file.
func (q *Queue) Close() error {
	return q.db.Close()
}

// expire drops the items older than MaxAge, oldest first.
func (q *Queue) expire(tx *bolt.Tx, st *state) error {
	cutoff := q.opts.Now().Add(-q.opts.MaxAge)
	c := tx.Bucket(itemsBucket).Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		it, err := decode(k, v)
		if err != nil {
			return err
		}
		if !it.Time.Before(cutoff) {
			return nil
		}
		if err := st.remove(tx, c, k, v, CauseAge); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the item under the cursor, counting it as dropped under
// cause unless cause is empty (delivered).
func (st *state) remove(tx *bolt.Tx, c *bolt.Cursor, k, v []byte, cause Cause) error {
	it, err := decode(k, v)
	if err != nil {
		return err
	}
	st.add(it, -1) // before Delete: v belongs to the page being changed
	if err := c.Delete(); err != nil {
		return err
	}
	if cause == "" {
		return nil
	}
	return st.countDrop(tx, cause)
}

// countDrop counts one drop, in the file as in the figures.
func (st *state) countDrop(tx *bolt.Tx, cause Cause) error {
	st.Dropped[cause]++
	return tx.Bucket(droppedBucket).Put([]byte(cause), binary.BigEndian.AppendUint64(nil, st.Dropped[cause]))
}

// add adds (sign 1) or subtracts (-1) an item from the figures; update
// sets Oldest.
func (st *state) add(it Item, sign int) {
	st.Requests += sign
	st.Points += int64(sign * it.Points)
	st.Bytes += int64(sign * len(it.Payload))
}

func key(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func decode(k, v []byte) (Item, error) {
	if len(k) != 8 || len(v) < headerSize {
		return Item{}, fmt.Errorf("queue item %x is malformed (%d bytes)", k, len(v))
	}
	return Item{
		ID:      binary.BigEndian.Uint64(k),
		Time:    time.Unix(0, int64(binary.BigEndian.Uint64(v))),
		Points:  int(binary.BigEndian.Uint64(v[8:])),
		Payload: v[headerSize:],
	}, nil
}
