//go:build linux

package prober

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/tunnet"
)

// pingLoopback takes a round of 5 to p's host and insists on exactly 5 answers,
// no duplicates, no reordering: loopback loses nothing.
func pingLoopback(t *testing.T, p *ICMP) {
	t.Helper()
	r, err := TakeRound(context.Background(), p, RoundSpec{Count: 5, Interval: 10 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 5 || r.Received() != 5 || r.Duplicates != 0 || r.Reordered != 0 || len(r.Failures) != 0 {
		t.Fatalf("icmp round to %s over a %s: sent %d received %d duplicates %d reordered %d errors %v; want 5 of 5 and nothing else",
			p.host, p.Mode(), r.Sent, r.Received(), r.Duplicates, r.Reordered, r.Errors)
	}
	for _, d := range r.RTTs() {
		if d <= 0 {
			t.Errorf("RTT %v", d)
		}
	}
	if _, _, err := probe(t, p, 5*time.Second); err != nil {
		t.Errorf("single icmp probe to %s: %v", p.host, err)
	}
}

// TestICMPLoopback pings 127.0.0.1 with whatever socket this process may
// open (a raw one as root on a host whose ping_group_range is "1 0").
func TestICMPLoopback(t *testing.T) {
	p, err := NewICMP("127.0.0.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.StartError(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	t.Logf("icmp over a %s, kernel receive timestamps %v, send timestamps %v", p.Mode(), p.KernelTimestamps(), p.KernelSendTimestamps())
	if !p.KernelTimestamps() || !p.KernelSendTimestamps() {
		t.Errorf("kernel receive timestamps %v, send timestamps %v on a Linux ICMP socket; want both", p.KernelTimestamps(), p.KernelSendTimestamps())
	}
	pingLoopback(t, p)

	p, err = NewICMP("nonexistent.invalid.", Options{Resolver: nxdomainResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 2, Interval: time.Millisecond, Timeout: time.Second})
	if r.Sent != 2 || r.Failures[ReasonDNS] != 2 {
		t.Errorf("unresolvable icmp target: %+v, want 2 dns failures", r)
	}
}

const (
	netnsChild   = "BANTAY_NETNS_CHILD"
	noPermsChild = "BANTAY_ICMP_NOPERMS_CHILD"
)

// TestInNetns runs itself again inside a network namespace of its own
// (unshare --net), where it may change net.ipv4.ping_group_range and add
// TUN devices without touching the host: there it pings 127.0.0.1, ::1
// and a host behind a delaying TUN responder over ping sockets, then over
// raw sockets, measures TCP connects through a delay line (tun_test.go),
// checks that an unroutable destination is a named failure, and runs a
// third copy as nobody without capabilities, which must be told why it
// may not send ICMP.
func TestInNetns(t *testing.T) {
	// The unprivileged copy inherits netnsChild too, so it is asked first.
	if os.Getenv(noPermsChild) == "1" {
		icmpNotPermitted(t)
		return
	}
	if tunnet.InNetns(t, "TestInNetns", netnsChild) {
		inNetns(t)
	}
}

// runChild runs cmd (this test binary, one test) with env=1 and fails
// unless that test passed.
func runChild(t *testing.T, cmd *exec.Cmd, env string) {
	t.Helper()
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", env, out)
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("%s: %v", env, err)
	}
}

func writeSysctl(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
}

func inNetns(t *testing.T) {
	// Root may open raw sockets whatever the sysctl says, so the ping
	// socket must win where the range allows it.
	for _, m := range []struct{ groups, mode, dev, prefix string }{
		{"0 2147483647", ICMPPingSocket, "bantay0", "198.18.0"},
		{"1 0", ICMPRawSocket, "bantay1", "198.18.1"},
	} {
		writeSysctl(t, "/proc/sys/net/ipv4/ping_group_range", m.groups)
		for _, host := range []string{"127.0.0.1", "::1"} {
			p, err := NewICMP(host, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode() != m.mode || !p.KernelSendTimestamps() {
				t.Fatalf("%s: mode %q, send timestamps %v with ping_group_range %q; want %q with send timestamps", host, p.Mode(), p.KernelSendTimestamps(), m.groups, m.mode)
			}
			pingLoopback(t, p)
			checkSendTimestamp(t, p)
		}
		pingThroughTUN(t, m.dev, m.prefix, m.mode)
	}
	connectThroughDelayLine(t)

	// The namespace has no route but loopback's: sending to TEST-NET-1
	// fails in the kernel's route lookup and no packet exists at all.
	p, err := NewICMP("192.0.2.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 2, Interval: time.Millisecond, Timeout: time.Second})
	if r.Received() != 0 || r.Failures[ReasonOther] != 2 || !errors.Is(r.Errors[ReasonOther], syscall.ENETUNREACH) {
		t.Errorf("unroutable target: %+v, want 2 failures for network unreachable", r)
	}
	_, reason, err := probe(t, NewTCP("192.0.2.1:80", Options{}), time.Second)
	if reason != ReasonOther || !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("tcp to an unroutable target: reason %q, error %v; want other, network unreachable", reason, err)
	}

	// Nobody, with no capabilities and ping sockets limited to group 1.
	setpriv := testenv.Binary(t, "setpriv", "")
	dir, err := os.MkdirTemp("", "icmp-noperms-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "prober.test")
	copyFile(t, os.Args[0], bin)
	os.Chmod(dir, 0o755)
	runChild(t, exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"--", bin, "-test.run=^TestInNetns$", "-test.v", "-test.count=1"), noPermsChild)
}

// pingThroughTUN pings a host behind a delaying TUN responder (addresses
// of RFC 2544's benchmarking range, inside the test's namespace only) that
// drops the 4th request, answers the 7th twice and the 9th with a
// destination unreachable: loss and duplicates exact, the median RTT the
// injected delay. A raw socket sees the unreachable and names it for that
// probe alone; a ping socket, which is not given ICMP errors, loses it.
func pingThroughTUN(t *testing.T, dev, prefix, mode string) {
	t.Helper()
	const delay = 50 * time.Millisecond
	tunResponder{delay: delay, drop: map[int]bool{3: true}, dup: map[int]bool{6: true}, unreach: map[int]bool{8: true}}.start(t, dev, prefix+".1")
	p, err := NewICMP(prefix+".2", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode() != mode {
		t.Fatalf("mode %q, want %q", p.Mode(), mode)
	}
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 10, Interval: 20 * time.Millisecond, Timeout: time.Second})
	wantFailures := map[Reason]int{ReasonTimeout: 1, ReasonOther: 1}
	if mode == ICMPPingSocket {
		wantFailures = map[Reason]int{ReasonTimeout: 2}
	}
	if r.Sent != 10 || r.Received() != 8 || r.Duplicates != 1 || !maps.Equal(r.Failures, wantFailures) {
		t.Fatalf("icmp over a %s through %s: sent %d received %d duplicates %d failures %v (%v); want 10, 8, 1, %v",
			mode, dev, r.Sent, r.Received(), r.Duplicates, r.Failures, r.Errors, wantFailures)
	}
	var unreach *UnreachableError
	if mode == ICMPRawSocket && (!errors.As(r.Errors[ReasonOther], &unreach) || unreach.Code != 1 || unreach.From.String() != prefix+".2") {
		t.Errorf("raw socket: error %v, want a destination unreachable (code 1) from %s.2", r.Errors[ReasonOther], prefix)
	}
	wantNear(t, "icmp rtt over a "+mode, r.RTTs(), delay)
	s, _ := r.Stats()
	t.Logf("icmp over a %s, %v injected: min %v p50 %v max %v jitter %v", mode, delay, s.Min, s.P50, s.Max, s.Jitter)
}

// connectThroughDelayLine measures TCP connects to a "remote" host whose
// SYNs (and every other packet towards it) tunnet's delay line holds back: the
// handshake is the kernel's on both ends, the delay the test's.
func connectThroughDelayLine(t *testing.T) {
	t.Helper()
	const delay = 50 * time.Millisecond
	dev := tunnet.OpenTUN(t, "bantay2", "198.18.2.1/23")
	tunnet.NewDelayLine(t, dev, netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.3.2"), delay)
	_, port, _ := net.SplitHostPort(closingListener(t, "198.18.2.1:0"))
	r, _ := TakeRound(context.Background(), NewTCP("198.18.2.2:"+port, Options{}), RoundSpec{Count: 5, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second})
	if r.Sent != 5 || r.Received() != 5 {
		t.Fatalf("tcp through the delay line: sent %d received %d errors %v", r.Sent, r.Received(), r.Errors)
	}
	wantNear(t, "tcp connect", r.RTTs(), delay)
	s, _ := r.Stats()
	t.Logf("tcp connect, %v injected: min %v p50 %v max %v", delay, s.Min, s.P50, s.Max)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// icmpNotPermitted is TestInNetns's unprivileged copy: NewICMP must refuse
// with the reason and the two ways to fix it.
func icmpNotPermitted(t *testing.T) {
	p, err := NewICMP("127.0.0.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = p.StartError()
	var perm *ICMPPermissionError
	if !errors.As(err, &perm) || !errors.Is(err, syscall.EPERM) || p.Mode() != "" {
		t.Fatalf("NewICMP without permission: start error %v, mode %q; want an *ICMPPermissionError and no mode", err, p.Mode())
	}
	for _, want := range []string{`ping_group_range = "1 0"`, "CAP_NET_RAW", "icmp to 127.0.0.1: not permitted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Every probe fails for that reason, counted, without a crash or a hang.
	r, _ := TakeRound(context.Background(), p, RoundSpec{Count: 3, Interval: time.Millisecond, Timeout: time.Second})
	if r.Sent != 3 || r.Failures[ReasonOther] != 3 || !errors.As(r.Errors[ReasonOther], &perm) {
		t.Errorf("round without permission: %+v, want 3 failures (other) naming the permission", r)
	}
}

// TestICMPSendTimestamps: a reply comes with the kernel's transmit time of
// its request, over IPv4 and IPv6 alike (here with whatever socket this
// process may open; TestInNetns checks both kinds).
func TestICMPSendTimestamps(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		p, err := NewICMP(host, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.StartError(); err != nil {
			testenv.Unavailable(t, "%v", err)
		}
		checkSendTimestamp(t, p)
	}
}

// checkSendTimestamp sends one echo request with p and wants its reply's
// kernel send time between the clock read before the send and the
// reply's receive time.
func checkSendTimestamp(t *testing.T, p *ICMP) {
	t.Helper()
	conn, err := p.openRound(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close()
	before := time.Now().Round(0)
	if err := conn.send(0); err != nil {
		t.Fatal(err)
	}
	i, _, kernelSent, kernel, err := conn.recv()
	if err != nil || i != 0 {
		t.Fatalf("%s: reply %d, %v", p.host, i, err)
	}
	if kernelSent.Before(before) || kernel.Before(kernelSent) {
		t.Errorf("%s over a %s: clock before the send %v, kernel send time %v, receive time %v; want them in that order",
			p.host, p.Mode(), before, kernelSent, kernel)
	}
}
