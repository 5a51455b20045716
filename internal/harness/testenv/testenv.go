// Package testenv finds the real components that integration tests start
// (Prometheus, promtool, Alertmanager, Chromium, VictoriaLogs) and decides
// what happens when one is missing: on a developer machine the test is
// skipped; under CI (CI=true, or BANTAY_REQUIRE_COMPONENTS=1) it fails, so a
// missing install step can never turn into a silently green run.
package testenv

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of its own of the given size (e.g. "30m") for the
// test, and unmounts it when the test ends: a real file system that fills
// up, for full-disk tests. Mounting needs root, so elsewhere the test is
// skipped, and under CI (which runs as root) it fails.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		Unavailable(t, "mount -t tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// FillDisk writes a ballast file in dir until its file system is full, then
// gives back leave bytes of it, so that writes beyond those fail with
// ENOSPC. The returned function deletes the ballast: space returns.
func FillDisk(t testing.TB, dir string, leave int64) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("ballast: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var n int64
	for range 1 << 16 { // bounded: 64 GiB, far beyond a test's tmpfs
		w, err := f.Write(chunk)
		n += int64(w)
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("ballast: %v", err)
		}
		if err := f.Truncate(max(n-leave, 0)); err != nil {
			t.Fatalf("ballast: %v", err)
		}
		return func() {
			if err := os.Remove(path); err != nil {
				t.Fatalf("remove ballast: %v", err)
			}
		}
	}
	t.Fatalf("%s never filled up", dir)
	return nil
}

// Strict reports whether missing components must fail tests rather than skip them.
func Strict() bool {
	if v, err := strconv.ParseBool(os.Getenv("BANTAY_REQUIRE_COMPONENTS")); err == nil {
		return v
	}
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Unavailable skips the test, or fails it under CI, with the reason given.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("required test component unavailable (CI=true): "+format, args...)
	}
	t.Skipf("skipping, component unavailable: "+format, args...)
}

// Binary returns the path of the named executable, looking at the
// environment variable envVar first (if non-empty) and then PATH. It calls
// Unavailable when the binary cannot be found.
func Binary(t testing.TB, name, envVar string) string {
	t.Helper()
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
			Unavailable(t, "%s=%s does not exist", envVar, p)
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found in PATH (install it, or set %s)", name, envVar)
	}
	return p
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a real server the test is about to start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// LongTest marks a slow integration test: `go test -short` skips it on a
// developer machine, and under CI it fails instead, so a CI run can never
// pass with the real-component tests left out.
func LongTest(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		Unavailable(t, "-short leaves out %s", what)
	}
}
