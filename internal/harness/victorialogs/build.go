// Package victorialogs is a test harness around VictoriaLogs (Apache-2.0),
// an independently written store that accepts Grafana Loki's push protocol at
// /insert/loki/api/v1/push. Bantay's Loki exporter is tested against it
// because Loki's own server is AGPL and must not be used, not even in tests.
//
// The harness builds VictoriaLogs from its Go module once per machine and
// caches the binary under the Go build cache, outside the repository; none of
// its code or binaries are ever committed here.
package victorialogs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

const (
	// Module is the Go module VictoriaLogs is built from.
	Module = "github.com/VictoriaMetrics/VictoriaLogs"
	// Version is the pinned VictoriaLogs release the harness builds.
	Version = "v1.52.1"
	// BinaryEnv, when set, names a prebuilt victoria-logs binary to use
	// instead of building one (for CI images that ship it).
	BinaryEnv = "BANTAY_VICTORIALOGS_BIN"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a victoria-logs binary, building it on first
// use. When it cannot be had (no network to the module proxy, no Go
// toolchain) it calls testenv.Unavailable: a skip on a developer machine, a
// failure under CI.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			testenv.Unavailable(t, "%s=%s: %v", BinaryEnv, p, err)
		}
		return p
	}
	// sync.Once covers tests in one package; the file lock inside
	// buildCached covers parallel test binaries (go test ./...).
	buildOnce.Do(func() { buildPath, buildErr = buildCached() })
	if buildErr != nil {
		testenv.Unavailable(t, "build VictoriaLogs %s: %v", Version, buildErr)
	}
	return buildPath
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("go toolchain not found in PATH or GOROOT")
}

// goEnv is the environment for the go commands the harness runs: outside
// any workspace, and with module-mode flags of the caller (e.g.
// GOFLAGS=-mod=vendor) cleared because they are meant for Bantay, not for
// VictoriaLogs.
func goEnv() []string {
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOFLAGS=") || strings.HasPrefix(kv, "GOWORK=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off", "GOFLAGS=-mod=mod")
}

func run(dir, goBin string, args ...string) ([]byte, error) {
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes(), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// CacheDir is where the binary (and the writable copy of the module source
// it was built from) live: under GOCACHE, so `go clean -cache` removes it.
func CacheDir() (string, error) {
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	out, err := run(os.TempDir(), goBin, "env", "GOCACHE")
	if err != nil {
		return "", err
	}
	gocache := strings.TrimSpace(string(out))
	if gocache == "" || gocache == "off" {
		return "", errors.New("GOCACHE is off; nowhere to cache the VictoriaLogs build")
	}
	return filepath.Join(gocache, "bantay-victorialogs", Version), nil
}

func buildCached() (string, error) {
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "victoria-logs")

	// An exclusive lock so that parallel test binaries wait for one build
	// instead of running several 30-second builds on a 2-core machine.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file releases it anyway

	// The binary is only ever renamed into place complete, so its
	// existence means a finished build.
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}

	out, err := run(dir, goBin, "mod", "download", "-json", Module+"@"+Version)
	if err != nil {
		return "", err
	}
	var mod struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("parse go mod download output: %w", err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", Module, Version, mod.Error)
	}

	// The module cache is read-only; go build needs a writable module
	// root (it may update go.sum), so build from a copy.
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return "", err
	}
	if err := copyTree(mod.Dir, src); err != nil {
		return "", fmt.Errorf("copy module source: %w", err)
	}
	tmp := bin + ".tmp"
	if _, err := run(src, goBin, "build", "-o", tmp, "./app/victoria-logs"); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// copyTree copies the regular files and directories under from into to,
// with writable permissions. Only what the build needs is copied: the
// documentation, dashboards and deployment files are left out.
func copyTree(from, to string) error {
	skip := map[string]bool{"docs": true, "dashboards": true, "deployment": true, "benchmarks": true, "apptest": true}
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() && skip[rel] {
			return filepath.SkipDir
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
