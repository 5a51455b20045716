package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/probes/echo"
)

// delayedEcho answers Bantay echo requests after delay, in the order they
// came: one writer goroutine holds each reply until it is due, so a loaded
// machine can make replies late but never reorder them (a timer per packet
// did, and the test then saw the echo's reordering, not the probe's).
func delayedEcho(t *testing.T, delay time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	type reply struct {
		due  time.Time
		b    []byte
		from net.Addr
	}
	line := make(chan reply, 64)
	go func() {
		defer close(line)
		for {
			buf := make([]byte, 1500)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			line <- reply{time.Now().Add(delay), buf[:n], from}
		}
	}()
	go func() {
		for r := range line {
			time.Sleep(time.Until(r.due))
			if echo.MakeReply(r.b) == nil {
				pc.WriteTo(r.b, r.from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// TestMeasureJSON builds bantay-probe and runs `measure --json` against an
// HTTP server that waits 50 ms before its first byte and a closed port,
// then the udp method against an echo that waits 30 ms: every field of
// every line, and the exit status.
func TestMeasureJSON(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bantay-probe")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const httpDelay, udpDelay = 50 * time.Millisecond, 30 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(httpDelay)
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	dead := "http://" + closedTCP(t) + "/"

	lines, code, stderr := runMeasure(t, bin, "--json", "--method", "http", "--count", "3", "--interval", "20ms", "--timeout", "5s", srv.URL, dead)
	if code != 1 || len(lines) != 2 {
		t.Fatalf("a dead target must exit 1 with a line per target: exit %d, %d lines, stderr %s", code, len(lines), stderr)
	}
	ok, bad := lines[0], lines[1]
	checkLine(t, ok, srv.URL, "http", 3, 3, httpDelay)
	phases, _ := ok["phases_ms"].(map[string]any)
	if processing, _ := phases["processing"].(float64); ok["status_code"] != 200.0 || len(phases) != 3 || processing < float64(httpDelay)/1e6 {
		t.Errorf("http line: status_code %v, phases_ms %v; want 200 and connect, processing (≥ %v), transfer", ok["status_code"], phases, httpDelay)
	}
	if bad["target"] != dead || bad["received"] != 0.0 || bad["loss_ratio"] != 1.0 || bad["rtt_ms"] != nil || bad["jitter_ms"] != nil {
		t.Errorf("dead target line %v: want received 0, loss_ratio 1, rtt_ms and jitter_ms null", bad)
	}
	if f, _ := bad["failures"].(map[string]any); f["refused"] != 3.0 {
		t.Errorf("dead target failures %v, want 3 refused", bad["failures"])
	}

	lines, code, stderr = runMeasure(t, bin, "--json", "--method", "udp", "--count", "5", "--interval", "10ms", "--timeout", "5s", delayedEcho(t, udpDelay))
	if code != 0 || len(lines) != 1 {
		t.Fatalf("udp: exit %d, %d lines, stderr %s", code, len(lines), stderr)
	}
	checkLine(t, lines[0], lines[0]["target"].(string), "udp", 5, 5, udpDelay)
}

func closedTCP(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func runMeasure(t *testing.T, bin string, args ...string) (lines []map[string]any, code int, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"measure"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines, cmd.ProcessState.ExitCode(), errb.String()
}

// checkLine checks one target's line: counts exact, the six RTT fields in
// order, at 0.001 ms resolution, the median at the injected delay.
func checkLine(t *testing.T, m map[string]any, target, method string, sent, received float64, delay time.Duration) {
	t.Helper()
	if m["target"] != target || m["method"] != method || m["sent"] != sent || m["received"] != received || m["loss_ratio"] != 0.0 ||
		m["duplicates"] != 0.0 || m["reordered"] != 0.0 {
		t.Errorf("line %v: want target %s, method %s, %v sent, %v received, no loss, duplicates or reordering", m, target, method, sent, received)
	}
	rtt, _ := m["rtt_ms"].(map[string]any)
	prev := 0.0
	for _, k := range []string{"min", "p50", "p90", "p99", "max"} {
		v, ok := rtt[k].(float64)
		if !ok || v < prev || math.Abs(v*1000-math.Round(v*1000)) > 1e-6 {
			t.Errorf("rtt_ms.%s = %v (rtt_ms %v): want a number ≥ the one before, in steps of 0.001 ms", k, rtt[k], rtt)
		}
		prev = v
	}
	want := float64(delay) / 1e6
	if p50, _ := rtt["p50"].(float64); p50 < want || p50 >= want+40 {
		t.Errorf("rtt_ms.p50 = %v, want the injected %v ms (+ at most 40)", p50, want)
	}
	if mean, ok := rtt["mean"].(float64); !ok || mean < rtt["min"].(float64) || mean > rtt["max"].(float64) {
		t.Errorf("rtt_ms.mean = %v outside [min, max]", rtt["mean"])
	}
	if _, ok := m["jitter_ms"].(float64); !ok {
		t.Errorf("jitter_ms = %v, want a number for %v answers", m["jitter_ms"], received)
	}
}

func TestMeasureText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	dead := closedTCP(t)
	code, out, errs := runCmd(context.Background(), "measure", "--method", "tcp", "--count", "2", "--interval", "5ms", srv.Listener.Addr().String(), dead)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one target never answered); stderr %s", code, errs)
	}
	for _, want := range []string{"target  sent  recv    loss", srv.Listener.Addr().String() + "     2     2    0.0%", dead + "     2     0  100.0%", dead + ": 2 refused (dial tcp " + dead} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}
}

func TestMeasureUsage(t *testing.T) {
	if code, _, errs := runCmd(context.Background(), "measure", "--help"); code != 0 || !strings.Contains(errs, "usage: bantay-probe measure [flags] TARGET...") || !strings.Contains(errs, "-query-name") {
		t.Errorf("measure --help: exit %d, %q; want 0 and the usage with every flag", code, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no target given"},
		{[]string{"--method", "ping", "x"}, `--method "ping" is not one of icmp, tcp, http, dns, udp`},
		{[]string{"--count", "-1", "127.0.0.1"}, "--count -1 is not 1..10000"},
		{[]string{"--interval", "0s", "127.0.0.1"}, "--interval 0s must be positive"},
		{[]string{"--method", "tcp", "127.0.0.1"}, `target "127.0.0.1": not host:port`},
		{[]string{"--method", "icmp", "127.0.0.1:80"}, "for method icmp give a host name or IP address (no port, no brackets)"},
		{[]string{"--method", "dns", "127.0.0.1:53"}, "--query-name: is required for method dns"},
		{[]string{"--query-name", "x.ph", "127.0.0.1"}, "--query-name applies only to --method dns"},
		{[]string{"--source", "eth0", "127.0.0.1"}, `--source "eth0" is not an IP address`},
		{[]string{"--frobnicate"}, "flag provided but not defined"},
		{[]string{"--method", "udp", "--probe-id", "", "127.0.0.1:7001"}, `target "127.0.0.1:7001": udp prober: probe id "" must be 1..63 bytes`},
	} {
		code, _, errs := runCmd(context.Background(), append([]string{"measure"}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("measure %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}
