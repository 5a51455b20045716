package queue

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable clock for age limits.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func open(t *testing.T, path string, o Options) *Queue {
	t.Helper()
	q, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func payload(i int) []byte { return fmt.Appendf(nil, "request-%04d", i) } // 12 bytes

func TestOrderAndRemove(t *testing.T) {
	c := &clock{t0}
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxBytes: 1 << 20, MaxAge: time.Hour, Now: c.now})
	for i := range 5 {
		if err := q.Append(t0.Add(time.Duration(i)*time.Second), i+1, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := q.Stats()
	if s.Requests != 5 || s.Points != 15 || s.Bytes != 60 || !s.Oldest.Equal(t0) {
		t.Fatalf("stats %+v, want 5 requests, 15 points, 60 bytes, oldest %s", s, t0)
	}
	items, err := q.Peek(3)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		if string(it.Payload) != string(payload(i)) || it.Points != i+1 || !it.Time.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("item %d is %q (%d points, %s), want the %d-th appended", i, it.Payload, it.Points, it.Time, i)
		}
	}
	// Delivered items are not drops; the next oldest becomes the head.
	if err := q.Remove(items[0].ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := q.Remove(items[1].ID, CauseRefused); err != nil {
		t.Fatal(err)
	}
	if err := q.Remove(items[1].ID, CauseRefused); err != nil { // gone already: nothing
		t.Fatal(err)
	}
	s = q.Stats()
	if s.Requests != 3 || s.Points != 12 || !s.Oldest.Equal(t0.Add(2*time.Second)) || s.Dropped[CauseRefused] != 1 || s.Dropped[CauseSize] != 0 {
		t.Fatalf("after removals %+v", s)
	}
	items, _ = q.Peek(10)
	if len(items) != 3 || string(items[0].Payload) != string(payload(2)) {
		t.Fatalf("left %d items starting %q, want 3 from request-0002", len(items), items[0].Payload)
	}
}

func TestSizeLimitDropsOldestFirst(t *testing.T) {
	c := &clock{t0}
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxBytes: 36, MaxAge: time.Hour, Now: c.now}) // 3 payloads
	for i := range 5 {
		if err := q.Append(t0, 1, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	// One payload larger than the whole queue is dropped, not stored.
	if err := q.Append(t0, 1, make([]byte, 37)); err != nil {
		t.Fatal(err)
	}
	s := q.Stats()
	if s.Requests != 3 || s.Bytes != 36 || s.Dropped[CauseSize] != 3 {
		t.Fatalf("stats %+v, want 3 requests of 36 bytes and 3 size drops", s)
	}
	items, _ := q.Peek(10)
	for i, it := range items {
		if string(it.Payload) != string(payload(i+2)) {
			t.Fatalf("item %d is %q, want %q: the oldest must go first", i, it.Payload, payload(i+2))
		}
	}
}

func TestAgeLimit(t *testing.T) {
	c := &clock{t0}
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxBytes: 1 << 20, MaxAge: 10 * time.Minute, Now: c.now})
	for i := range 4 {
		q.Append(t0.Add(time.Duration(i)*5*time.Minute), 1, payload(i))
	}
	c.t = t0.Add(21 * time.Minute) // items at 0, 5 and 10 min are older than 10 min
	items, err := q.Peek(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || string(items[0].Payload) != string(payload(3)) {
		t.Fatalf("Peek returned %d items, want only the one measured at 15 min", len(items))
	}
	if s := q.Stats(); s.Dropped[CauseAge] != 3 || s.Requests != 1 || !s.Oldest.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("stats %+v", s)
	}
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	c := &clock{t0}
	o := Options{MaxBytes: 24, MaxAge: time.Hour, Now: c.now}
	q, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		q.Append(t0, 2, payload(i))
	}
	if _, err := Open(path, o); err == nil {
		t.Fatal("a second Open of a file in use succeeded")
	}
	q.Close()
	q = open(t, path, o)
	s := q.Stats()
	if s.Requests != 2 || s.Points != 4 || s.Dropped[CauseSize] != 1 {
		t.Fatalf("after reopen %+v, want 2 requests, 4 points, 1 size drop remembered", s)
	}
	q.Append(t0, 1, payload(3))
	items, _ := q.Peek(10)
	if len(items) != 2 || string(items[0].Payload) != string(payload(2)) || string(items[1].Payload) != string(payload(3)) || items[1].ID <= items[0].ID {
		t.Fatalf("after reopen and append: %v", items)
	}
}

// crashChildEnv makes the test binary a child that appends until killed;
// its value is the queue path and the first item number, "path:start".
const crashChildEnv = "BANTAY_QUEUE_CRASH_CHILD"

var crashOpts = Options{MaxBytes: 1 << 30, MaxAge: 24 * time.Hour}

// crashChild is TestReopenAfterKill's child process: it appends items
// numbered from start (in Points) and prints each number once its append
// has returned (is committed), until it is killed.
func crashChild(env string) {
	path, startText, _ := strings.Cut(env, "|")
	start, _ := strconv.Atoi(startText)
	q, err := Open(path, crashOpts)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	big := make([]byte, 16<<10) // several pages per item, so a kill can land mid-write
	for i := start; i < start+100_000; i++ {
		copy(big, payload(i))
		if err := q.Append(time.Now(), i, big); err != nil {
			fmt.Println("append:", err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
	os.Exit(0)
}

// TestReopenAfterKill kills (SIGKILL) a process in the middle of its
// appends, three times over the same file, and reopens the queue each
// time: bbolt's consistency check passes, every append the child reported
// committed is there, numbered without a gap, in order and intact.
func TestReopenAfterKill(t *testing.T) {
	if env := os.Getenv(crashChildEnv); env != "" {
		crashChild(env)
	}
	path := filepath.Join(t.TempDir(), "q.db")
	queued := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReopenAfterKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d", crashChildEnv, path, queued))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		committed := -1
		for committed < queued+20 && sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			committed = n
		}
		// The child is appending a later item, or about to, when killed.
		cmd.Process.Kill()
		cmd.Wait()
		if committed < queued+20 {
			t.Fatalf("round %d: child stopped after item %d", round, committed)
		}

		q, err := Open(path, crashOpts)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if err := q.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d: bbolt check: %v", round, err)
		}
		items, err := q.Peek(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) <= committed {
			t.Fatalf("round %d: %d items after the kill, want at least the %d reported committed", round, len(items), committed+1)
		}
		for i, it := range items {
			if it.Points != i || !bytes.HasPrefix(it.Payload, payload(i)) || len(it.Payload) != 16<<10 {
				t.Fatalf("round %d: item %d is number %d, %d bytes starting %q", round, i, it.Points, len(it.Payload), it.Payload[:12])
			}
		}
		if s := q.Stats(); s.Requests != len(items) {
			t.Fatalf("round %d: stats say %d requests, Peek found %d", round, s.Requests, len(items))
		}
		queued = len(items)
		q.Close()
	}
}
