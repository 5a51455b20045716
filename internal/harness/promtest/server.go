package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// Prometheus is a real Prometheus server started by StartPrometheus.
type Prometheus struct {
	// URL is the server root, e.g. "http://127.0.0.1:40123".
	URL        string
	Addr       string
	DataDir    string
	ConfigFile string
	proc       *process
}

// RemoteWriteURL is the server's remote-write receiver endpoint.
func (p *Prometheus) RemoteWriteURL() string { return p.URL + "/api/v1/write" }

// Client returns an API client for the server.
func (p *Prometheus) Client() *Client { return NewClient(p.URL) }

// Reload makes the server re-read its configuration and rule files
// (POST /-/reload).
func (p *Prometheus) Reload(ctx context.Context) error {
	return postEmpty(ctx, p.URL+"/-/reload")
}

// DefaultPrometheusConfig is the configuration StartPrometheus writes when
// the arguments name no --config.file: no scrape targets (data arrives by
// remote write) and rules evaluated every 15 s, the probe interval.
const DefaultPrometheusConfig = `global:
  scrape_interval: 15s
  evaluation_interval: 15s
`

// StartPrometheus starts the Debian prometheus binary (or $PROMETHEUS) on a
// free 127.0.0.1 port with a temporary data directory, its remote-write
// receiver and lifecycle endpoints enabled, waits until /-/ready answers and
// stops it when the test ends. args are appended to the command line; unless
// they contain --config.file, DefaultPrometheusConfig is used. A missing
// binary skips the test, or fails it under CI (see testenv).
func StartPrometheus(t testing.TB, args ...string) *Prometheus {
	t.Helper()
	bin := testenv.Binary(t, "prometheus", "PROMETHEUS")
	dir := t.TempDir()
	p := &Prometheus{DataDir: filepath.Join(dir, "data")}
	if !hasFlag(args, "--config.file") {
		p.ConfigFile = filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(p.ConfigFile, []byte(DefaultPrometheusConfig), 0o600); err != nil {
			t.Fatalf("write prometheus config: %v", err)
		}
		args = append([]string{"--config.file=" + p.ConfigFile}, args...)
	}
	p.proc = startServer(t, "prometheus", bin, func(addr string) []string {
		return append([]string{
			"--web.listen-address=" + addr,
			"--storage.tsdb.path=" + p.DataDir,
			"--web.enable-remote-write-receiver",
			"--web.enable-lifecycle",
			"--log.level=warn",
		}, args...)
	})
	p.Addr, p.URL = p.proc.addr, "http://"+p.proc.addr
	return p
}

// startServer runs a server binary on a free loopback port, retrying with a
// new port when another process took the one reserved (a short race that
// FreeAddr cannot close), and waits for its /-/ready.
func startServer(t testing.TB, name, bin string, argv func(addr string) []string) *process {
	t.Helper()
	const attempts = 3
	var lastErr error
	for range attempts {
		addr := testenv.FreeAddr(t)
		proc, err := startProcess(t, name, bin, argv(addr))
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		proc.addr = addr
		err = waitReady(proc, "http://"+addr+"/-/ready", 60*time.Second)
		if err == nil {
			t.Cleanup(func() { proc.stop(t) })
			return proc
		}
		proc.stop(t)
		lastErr = err
		if !strings.Contains(proc.logTail(), "address already in use") {
			break
		}
	}
	t.Fatalf("%s did not become ready: %v", name, lastErr)
	return nil
}

// process is a started server binary with its log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	addr    string
	logPath string
	exited  chan struct{}
	waitErr error
}

func startProcess(t testing.TB, name, bin string, args []string) (*process, error) {
	logFile, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a Ctrl-C of the test run reaches it once and
	// stop can signal exactly this server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &process{name: name, cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Logf("started %s (pid %d): %s %s", name, cmd.Process.Pid, bin, strings.Join(args, " "))
	return p, nil
}

// waitReady polls url until it answers 200, the process exits or the
// deadline passes; polls are bounded in number as well as in time.
func waitReady(p *process, url string, timeout time.Duration) error {
	const interval = 50 * time.Millisecond
	maxPolls := int(timeout / interval)
	client := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for range maxPolls {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited early (%v); log:\n%s", p.name, p.waitErr, p.logTail())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		}
		lastErr = err
		time.Sleep(interval)
	}
	return fmt.Errorf("not ready after %v: %v; log:\n%s", timeout, lastErr, p.logTail())
}

// stop sends SIGTERM, waits for a clean shutdown and kills the process if it
// does not come. The log is shown when the test failed.
func (p *process) stop(t testing.TB) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if t.Failed() {
		t.Logf("%s log (tail):\n%s", p.name, p.logTail())
	}
}

func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func postEmpty(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(nil))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

var errNoNotification = errors.New("no matching notification")
