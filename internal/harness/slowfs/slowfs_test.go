package slowfs

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A write and an fsync through the mount are each held for the delay set
// at that moment, counted, and land in the backing directory; with the
// delay back at 0 nothing is held or counted.
func TestWritesAndFsyncsWaitForTheDelay(t *testing.T) {
	sfs := Mount(t)
	f, err := os.Create(filepath.Join(sfs.Dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(p string) {
		t.Helper()
		if _, err := f.WriteString(p); err != nil {
			t.Fatal(err)
		}
	}
	write("fast ")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := sfs.Delayed(); got != (Delayed{}) {
		t.Fatalf("with no delay set, %+v requests were held", got)
	}

	const delay = 150 * time.Millisecond
	sfs.SetDelay(delay)
	start := time.Now()
	write("slow ")
	if took := time.Since(start); took < delay {
		t.Errorf("a write took %v with a delay of %v", took, delay)
	}
	start = time.Now()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("an fsync took %v with a delay of %v", took, delay)
	}
	if got := sfs.Delayed(); got != (Delayed{Writes: 1, Fsyncs: 1}) {
		t.Errorf("held %+v, want one write and one fsync", got)
	}

	sfs.SetDelay(0)
	write("fast again")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := sfs.Delayed(); got != (Delayed{Writes: 1, Fsyncs: 1}) {
		t.Errorf("after the delay went back to 0, held %+v, want still one write and one fsync", got)
	}

	backing, err := os.ReadFile(filepath.Join(sfs.Backing, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "fast slow fast again"; string(backing) != want {
		t.Errorf("backing file holds %q, want %q", backing, want)
	}
}

// What the TSDB does besides writing passes through: a file reopened and
// appended to (Open, not Create, is slowed too), renamed, listed, and read
// back through a shared memory map, as the head chunks and blocks are read.
func TestFilesBehaveAsOnTheBackingDisk(t *testing.T) {
	sfs := Mount(t)
	dir := filepath.Join(sfs.Dir, "wal")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "00000001.tmp")
	if err := os.WriteFile(tmp, []byte("segment"), 0o644); err != nil {
		t.Fatal(err)
	}
	sfs.SetDelay(time.Millisecond)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(" one"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sfs.Delayed().Writes; got != 1 {
		t.Errorf("a write to a reopened file: held %d writes, want 1", got)
	}
	final := filepath.Join(dir, "00000001")
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "00000001" {
		t.Fatalf("after the rename the directory lists %v (%v)", entries, err)
	}

	r, err := os.Open(final)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := []byte("segment one")
	m, err := syscall.Mmap(int(r.Fd()), 0, len(want), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer syscall.Munmap(m)
	if !bytes.Equal(m, want) {
		t.Errorf("mapped %q, want %q", m, want)
	}
}
