// Package thanos is a test harness around Thanos (Apache-2.0), the global
// and long-term store behind several Bantay collectors: each collector
// remote-writes to Thanos receive, and Thanos query answers PromQL over all
// of them (docs/SCALING.md).
//
// The harness builds Thanos from its Go module once per machine
// (internal/harness/modbuild), with the slicelabels build tag: without it
// the binary builds but panics at the first query.
package thanos

import (
	"context"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/modbuild"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// BinaryEnv, when set, names a prebuilt thanos binary to use instead of
// building one.
const BinaryEnv = "BANTAY_THANOS_BIN"

var peer = &modbuild.Peer{
	Name: "thanos", Module: "github.com/thanos-io/thanos", Version: "v0.42.4", Package: "./cmd/thanos",
	Tags: []string{"slicelabels"}, Skip: []string{"docs", "examples", "mixin", "website", "tutorials"},
	BinaryEnv: BinaryEnv,
}

// startTimeout bounds how long a component may take to become ready on a
// loaded 2-core machine; both are usually ready in about a second.
const startTimeout = 90 * time.Second

// Thanos is a running receive (one ingesting replica, no hashring) and a
// query pointed at it, on 127.0.0.1, stopped when the test ends. Query skips
// a store whose advertised time range misses the query, and refreshes an
// empty receive's range at its next endpoint check (every 5 s): the first
// data written shows within seconds, so tests poll for it.
type Thanos struct {
	receiveHTTP, receiveGRPC, remoteWrite, queryHTTP string
	receive, query                                   *proc
}

// Start builds Thanos (once) and starts receive and query.
func Start(t testing.TB) *Thanos {
	t.Helper()
	bin := peer.Binary(t)
	th := &Thanos{receiveHTTP: testenv.FreeAddr(t), receiveGRPC: testenv.FreeAddr(t), remoteWrite: testenv.FreeAddr(t), queryHTTP: testenv.FreeAddr(t)}
	th.receive = start(t, bin, th.receiveHTTP, "receive",
		"--tsdb.path="+t.TempDir(),
		"--grpc-address="+th.receiveGRPC,
		"--http-address="+th.receiveHTTP,
		"--remote-write.address="+th.remoteWrite,
		// Its replication server defaults to 0.0.0.0:19391: on loopback
		// and a free port, so two receives on one machine do not collide.
		"--receive.capnproto-address="+testenv.FreeAddr(t),
		`--label=receive_replica="0"`,
		// The collectors' out-of-order window: a probe's queued backlog
		// sent after an outage, and what a restarted collector's
		// remote-write backfill sends from before its restart, are accepted
		// here as by the collector (a deployment requirement,
		// docs/SCALING.md).
		"--tsdb.out-of-order.time-window=30m",
		"--log.level=warn")
	th.query = start(t, bin, th.queryHTTP, "query",
		"--endpoint="+th.receiveGRPC,
		"--http-address="+th.queryHTTP,
		"--grpc-address="+testenv.FreeAddr(t),
		"--log.level=warn")
	return th
}

// RemoteWriteURL is receive's Prometheus remote-write endpoint.
func (th *Thanos) RemoteWriteURL() string { return "http://" + th.remoteWrite + "/api/v1/receive" }

// QueryURL is the base URL of query's Prometheus HTTP API.
func (th *Thanos) QueryURL() string { return "http://" + th.queryHTTP }

// Logs is what both processes printed, for failure messages.
func (th *Thanos) Logs() string {
	return "receive:\n" + th.receive.out.String() + "\nquery:\n" + th.query.out.String()
}

type proc struct {
	cmd *exec.Cmd
	out *modbuild.Output
}

// start runs `thanos <component> args…` and waits until httpAddr's
// /-/ready answers 200.
func start(t testing.TB, bin, httpAddr, component string, args ...string) *proc {
	t.Helper()
	p := &proc{out: &modbuild.Output{}}
	p.cmd = exec.Command(bin, append([]string{component}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start thanos %s: %v", component, err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-exited:
			t.Fatalf("thanos %s exited during start: %s", component, modbuild.Tail(p.out.String(), 2000))
		case <-ctx.Done():
			t.Fatalf("thanos %s not ready at %s after %v: %s", component, httpAddr, startTimeout, modbuild.Tail(p.out.String(), 2000))
		case <-time.After(100 * time.Millisecond):
		}
		if ready(ctx, "http://"+httpAddr+"/-/ready") {
			return p
		}
	}
}

func ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
