package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/probes/echo"
)

func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	code, out, errs := runCmd(context.Background(), "validate", "--config", "../../config/testdata/probe.yaml")
	if code != 0 || !strings.Contains(out, "ok (probe mnl-01 in Manila, 2 uplinks, 3 targets)") {
		t.Fatalf("valid config: code %d, stdout %q, stderr %q", code, out, errs)
	}

	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	os.WriteFile(mesh, []byte("probe: {id: mnl-01, city: Manila}\ncollector: {endpoint: \"10.0.0.5:4317\", tls: {insecure: true}}\n"+
		"uplinks: [{name: globe-5g, carrier: Globe, network_type: 5g}]\nmesh: true\n"), 0o600)
	code, out, errs = runCmd(context.Background(), "validate", "--config", mesh)
	if code != 0 || !strings.Contains(out, "ok (probe mnl-01 in Manila, 1 uplinks, 0 targets, and the other sites from http://10.0.0.5:8080)") {
		t.Fatalf("mesh config: code %d, stdout %q, stderr %q", code, out, errs)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("probe: {id: x, city: Gotham}\n"), 0o600)
	code, _, errs = runCmd(context.Background(), "validate", "--config", bad)
	if code == 0 || !strings.Contains(errs, bad+":1: probe.city: \"Gotham\" is not a city") {
		t.Fatalf("bad config: code %d, stderr %q", code, errs)
	}
	// run refuses the same config before doing anything.
	if code, _, errs = runCmd(context.Background(), "run", "--config", bad); code == 0 || !strings.Contains(errs, "probe.city") {
		t.Fatalf("run with bad config: code %d, stderr %q", code, errs)
	}
}

// TestValidateChecksTokenFile: validate refuses a token_file that run
// refuses (missing, empty, a directory), as run does.
func TestValidateChecksTokenFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, tokenFile := range []string{filepath.Join(dir, "missing"), empty, dir} {
		cfgPath := filepath.Join(dir, "probe.yaml")
		os.WriteFile(cfgPath, []byte(`
probe: {id: mnl-01, city: Manila}
collector: {endpoint: "127.0.0.1:4317", tls: {insecure: true}, token_file: "`+tokenFile+`"}
uplinks: [{name: globe-5g, carrier: Globe, network_type: 5g}]
targets: [{name: t, dst_city: Davao, method: tcp, address: "127.0.0.1:1"}]
`), 0o600)
		for _, cmd := range []string{"validate", "run"} {
			if code, _, errs := runCmd(context.Background(), cmd, "--config", cfgPath); code != 1 || !strings.Contains(errs, "collector.token_file: ") {
				t.Errorf("%s with token_file %s: exit %d, stderr %q; want 1 naming collector.token_file", cmd, tokenFile, code, errs)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"validate"}, {"run", "--config"}, {"reflect", "extra"}, {"run", "--config", "x", "--log-level", "loud"}} {
		if code, _, _ := runCmd(context.Background(), args...); code == 0 {
			t.Errorf("%q exited 0", args)
		}
	}
	if code, out, _ := runCmd(context.Background(), "version"); code != 0 || !strings.HasPrefix(out, "bantay-probe ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestReflect(t *testing.T) {
	// A UDP port that was free a moment ago.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"reflect", "--listen", addr}, &bytes.Buffer{}, &stderr) }()

	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := echo.Append(nil, echo.Packet{Sequence: 42, ProbeID: "bag-01"})
	buf := make([]byte, 256)
	var got echo.Packet
	// The reflector may not be listening yet: resend until it answers.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			got, err = echo.Decode(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reflector never answered")
		}
	}
	if got.Kind != echo.KindReply || got.Sequence != 42 {
		t.Fatalf("reply %+v", got)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("reflect exited %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reflect did not stop on cancel")
	}
}

// syncBuffer is a bytes.Buffer safe to read while run writes logs to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunWithoutCollector runs the real command with no collector: it keeps
// measuring, logs the outage, and on shutdown exits 1 because the last
// measurements could not be delivered.
func TestRunWithoutCollector(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "probe.yaml")
	os.WriteFile(cfgPath, []byte(`
probe: {id: mnl-01, city: Manila}
collector: {endpoint: "`+testenv.FreeAddr(t)+`", tls: {insecure: true}, export_interval: 100ms, timeout: 200ms}
uplinks: [{name: globe-5g, carrier: Globe, network_type: 5g}]
targets: [{name: t, dst_city: Davao, method: tcp, address: "`+testenv.FreeAddr(t)+`", interval: 50ms, timeout: 20ms}]
`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run", "--config", cfgPath, "--log-format", "json"}, io.Discard, stderr)
	}()
	failing := `"msg":"probe failing","probe":"mnl-01","uplink":"globe-5g","target":"t","reason":"refused"`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "collector unreachable") || !strings.Contains(stderr.String(), failing); {
		if time.Now().After(deadline) {
			t.Fatalf("no outage or no failing target logged:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "final export not delivered") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
	if n := strings.Count(stderr.String(), `"msg":"collector unreachable`); n != 1 {
		t.Errorf("outage logged %d times:\n%s", n, stderr.String())
	}
	if n := strings.Count(stderr.String(), `"msg":"probe failing"`); n != 1 {
		t.Errorf("a target that always fails logged as failing %d times, want once:\n%s", n, stderr.String())
	}
}

// TestStopDuringOutageWithQueue: with queue.dir, a probe stopped while the
// collector is down says how much stays queued on disk, that it is sent on
// next start, and exits 0 because nothing is lost.
func TestStopDuringOutageWithQueue(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "probe.yaml")
	os.WriteFile(cfgPath, []byte(`
probe: {id: mnl-01, city: Manila}
collector: {endpoint: "`+testenv.FreeAddr(t)+`", tls: {insecure: true}, export_interval: 100ms, timeout: 200ms}
queue: {dir: "`+filepath.Join(dir, "queue")+`"}
uplinks: [{name: globe-5g, carrier: Globe, network_type: 5g}]
targets: [{name: t, dst_city: Davao, method: tcp, address: "`+testenv.FreeAddr(t)+`", interval: 50ms, timeout: 20ms}]
`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run", "--config", cfgPath, "--log-format", "json"}, io.Discard, stderr)
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "exports are queued on disk"); {
		if time.Now().After(deadline) {
			t.Fatalf("no outage logged:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stderr.String(), `stay queued on disk; they are sent on next start","probe":"mnl-01","uplink":"globe-5g","queue":"`+filepath.Join(dir, "queue", "globe-5g.db")+`","queued_requests":`) {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
	if strings.Contains(stderr.String(), "undelivered") {
		t.Errorf("queued data reported as undelivered:\n%s", stderr.String())
	}
}

// TestRunSetsMemoryLimitUnlessGOMEMLIMIT: run sets the probe's own soft
// memory limit, sized to its schedules, and says so; an operator's
// GOMEMLIMIT (here as the runtime would have read it at start) is left as
// it is.
func TestRunSetsMemoryLimitUnlessGOMEMLIMIT(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	cfgPath := filepath.Join(t.TempDir(), "probe.yaml")
	os.WriteFile(cfgPath, []byte(`
probe: {id: mnl-01, city: Manila}
collector: {endpoint: "`+testenv.FreeAddr(t)+`", tls: {insecure: true}, timeout: 200ms}
uplinks: [{name: globe-5g, carrier: Globe, network_type: 5g}]
targets: [{name: t, dst_city: Davao, method: tcp, address: "`+testenv.FreeAddr(t)+`"}]
`), 0o600)
	running := func() string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stderr := &syncBuffer{}
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{"run", "--config", cfgPath}, io.Discard, stderr) }()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "probe running"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no start logged:\n%s", stderr.String())
			}
		}
		cancel()
		<-done
		return stderr.String()
	}

	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	debug.SetMemoryLimit(math.MaxInt64)
	log := running()
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 || l > 64<<20 {
		t.Errorf("without GOMEMLIMIT the limit is %d, want the probe's own (one target: about 20 MiB)", l)
	}
	if !regexp.MustCompile(`memory_limit="[0-9.]+ MiB"`).MatchString(log) {
		t.Errorf("the limit is not logged at start:\n%s", log)
	}

	os.Setenv("GOMEMLIMIT", "123MiB")
	debug.SetMemoryLimit(123 << 20)
	log = running()
	if l := debug.SetMemoryLimit(-1); l != 123<<20 {
		t.Errorf("with GOMEMLIMIT=123MiB the limit became %d", l)
	}
	if !strings.Contains(log, `memory_limit="123.0 MiB"`) {
		t.Errorf("the operator's limit is not logged at start:\n%s", log)
	}
}
