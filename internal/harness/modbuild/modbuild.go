// Package modbuild builds a test peer (VictoriaLogs, Thanos, …) from its
// published Go module once per machine, as a new user would with `go mod
// download` and `go build`, and caches the binary under the Go build cache,
// outside the repository: none of a peer's code or binaries are ever
// committed here. A peer that cannot be had (no module proxy, no Go
// toolchain) is testenv.Unavailable: a skip on a developer machine, a
// failure under CI.
package modbuild

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

// Peer is one binary built from one pinned module version.
type Peer struct {
	// Name names the binary and its cache folder (bantay-<Name>/<Version>).
	Name string
	// Module and Version are the Go module and the pinned release.
	Module, Version string
	// Package is the main package inside the module, e.g. ./cmd/thanos.
	Package string
	// Tags are the build tags the peer needs.
	Tags []string
	// Skip names top-level folders of the module not copied for the build
	// (documentation, dashboards): less to copy, nothing the build reads.
	Skip []string
	// BinaryEnv, when set in the environment, names a prebuilt binary to
	// use instead of building one (for CI images that ship it).
	BinaryEnv string

	once sync.Once
	path string
	err  error
}

// Binary returns the path of the peer's binary, building it on first use.
func (p *Peer) Binary(t testing.TB) string {
	t.Helper()
	if env := os.Getenv(p.BinaryEnv); p.BinaryEnv != "" && env != "" {
		if _, err := os.Stat(env); err != nil {
			testenv.Unavailable(t, "%s=%s: %v", p.BinaryEnv, env, err)
		}
		return env
	}
	// sync.Once covers tests in one package; the file lock inside build
	// covers parallel test binaries (go test ./...).
	p.once.Do(func() { p.path, p.err = p.build() })
	if p.err != nil {
		testenv.Unavailable(t, "build %s %s: %v", p.Module, p.Version, p.err)
	}
	return p.path
}

// CacheDir is where the binary (and the writable copy of the module source
// it was built from) live: under GOCACHE, so `go clean -cache` removes it.
func (p *Peer) CacheDir() (string, error) {
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
		return "", fmt.Errorf("GOCACHE is off; nowhere to cache the %s build", p.Name)
	}
	return filepath.Join(gocache, "bantay-"+p.Name, p.Version), nil
}

func (p *Peer) build() (string, error) {
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	dir, err := p.CacheDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, p.Name)

	// An exclusive lock so that parallel test binaries wait for one build
	// instead of running several minute-long builds on a 2-core machine.
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

	out, err := run(dir, goBin, "mod", "download", "-json", p.Module+"@"+p.Version)
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
		return "", fmt.Errorf("go mod download %s@%s: %s", p.Module, p.Version, mod.Error)
	}

	// The module cache is read-only; go build needs a writable module
	// root (it may update go.sum), so build from a copy.
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return "", err
	}
	if err := copyTree(mod.Dir, src, p.Skip); err != nil {
		return "", fmt.Errorf("copy module source: %w", err)
	}
	tmp := bin + ".tmp"
	args := []string{"build", "-o", tmp}
	if len(p.Tags) > 0 {
		args = append(args, "-tags", strings.Join(p.Tags, ","))
	}
	if _, err := run(src, goBin, append(args, p.Package)...); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
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
// the peer.
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
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, Tail(stderr.String(), 2000))
	}
	return stdout.Bytes(), nil
}

// Tail is the last n bytes of s, trimmed, for error messages with a
// process's output.
func Tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// copyTree copies the regular files and directories under from into to,
// with writable permissions, leaving out the top-level folders in skip.
func copyTree(from, to string, skip []string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() && contains(skip, rel) {
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Output is a peer process's output, written by exec's copier goroutine
// while the test reads it. Bounded: it keeps the last 64 KiB, enough for
// failure messages.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Output) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64*1024 {
		rest := b.buf.Bytes()[b.buf.Len()-32*1024:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return b.buf.Write(p)
}

func (b *Output) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
