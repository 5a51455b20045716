// Package slowfs is a slow disk for fault tests: a FUSE pass-through file
// system (go-fuse's loopback) over a directory of the test's own that holds
// every write and fsync for a delay the test sets and changes while it
// runs, and counts what it held. A block device with delayed writes
// (dm-delay) would be closer to a real disk, but needs the device mapper,
// which containers seldom have; /dev/fuse they usually do.
//
// Only the data path is slowed: FUSE write requests (one per write(2),
// split by the kernel above its max_write) and file fsyncs. Reads, opens,
// renames and directory fsyncs pass at full speed.
package slowfs

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// FS is a mounted slow file system.
type FS struct {
	// Dir is the mount point: what the code under test writes to.
	Dir string
	// Backing is the directory the files really live in.
	Backing string

	delay  atomic.Int64 // time.Duration
	writes atomic.Int64
	fsyncs atomic.Int64
}

// Delayed counts the requests FS held for a delay (none while it is 0).
type Delayed struct {
	Writes, Fsyncs int64
}

// Mount mounts a new slow file system, with no delay yet, over a backing
// directory of the test's own, and unmounts it when the test ends (stop
// whatever writes to it first: t.Cleanup runs last-registered first). It
// mounts with mount(2) itself, as root, so it needs neither fusermount nor
// a setuid helper; without /dev/fuse or root the test is skipped, and under
// CI it fails (testenv.Unavailable).
func Mount(t testing.TB) *FS {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mounting a FUSE file system with mount(2) needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.Unavailable(t, "no FUSE device: %v", err)
	}
	base := t.TempDir()
	f := &FS{Dir: filepath.Join(base, "mnt"), Backing: filepath.Join(base, "backing")}
	for _, d := range []string{f.Dir, f.Backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.Backing, &st); err != nil {
		t.Fatal(err)
	}
	root := &fs.LoopbackRoot{Path: f.Backing, Dev: uint64(st.Dev)}
	root.RootNode = &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, fs: f}
	server, err := fs.Mount(f.Dir, root.RootNode, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMountStrict: true, // no fallback to a fusermount binary
		FsName:            "slowfs:" + f.Backing,
		Name:              "slowfs",
	}})
	if err != nil {
		testenv.Unavailable(t, "mount FUSE at %s: %v", f.Dir, err)
	}
	t.Cleanup(func() {
		f.SetDelay(0) // let requests in flight finish
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", f.Dir, err)
		}
	})
	return f
}

// SetDelay sets how long every write and fsync from now on is held; 0
// passes them at once. Requests already held keep the delay they had.
func (f *FS) SetDelay(d time.Duration) { f.delay.Store(int64(d)) }

// Delayed returns what FS has held so far.
func (f *FS) Delayed() Delayed {
	return Delayed{Writes: f.writes.Load(), Fsyncs: f.fsyncs.Load()}
}

// hold waits out the delay, counting the request in n. It does not give up
// when the kernel interrupts the request: the Go runtime's preemption
// signals interrupt FUSE requests all the time, and a write answered EINTR
// is retried by the caller, so honouring them would hold it forever.
func (f *FS) hold(n *atomic.Int64) {
	d := time.Duration(f.delay.Load())
	if d <= 0 {
		return
	}
	n.Add(1)
	time.Sleep(d)
}

// node is a loopback node whose files are slow, and whose children are too.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
)

func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	return n.slow(fh), fuseFlags, errno
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return inode, n.slow(fh), fuseFlags, errno
}

func (n *node) slow(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &file{LoopbackFile: lf, fs: n.fs}
	}
	return fh // nil after an error
}

// file is a loopback file whose writes and fsyncs wait for the delay.
type file struct {
	*fs.LoopbackFile
	fs *FS
}

var (
	_ fs.FileWriter          = (*file)(nil)
	_ fs.FileFsyncer         = (*file)(nil)
	_ fs.FilePassthroughFder = (*file)(nil)
)

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.fs.hold(&f.fs.writes)
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	f.fs.hold(&f.fs.fsyncs)
	return f.LoopbackFile.Fsync(ctx, flags)
}

// PassthroughFd declines FUSE passthrough (Linux 6.9+), which the loopback
// file offers to root: the kernel would then write to the backing file
// itself and never send the writes here to be slowed.
func (f *file) PassthroughFd() (int, bool) { return -1, false }
