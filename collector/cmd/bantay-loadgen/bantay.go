package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/upstreampeer"
)

// buildCollector compiles bantay-collector from this module into dir.
func buildCollector(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "bantay-collector")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/bantay-noc/bantay/collector/cmd/bantay-collector").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build bantay-collector: %w\n%s", err, out)
	}
	return bin, nil
}

// bantaySide is a running bantay-collector configured for a fleet.
type bantaySide struct {
	cmd                  *exec.Cmd
	grpc, otlpHTTP, web  string // host:port
	telemetry            int
	readerToken, logPath string
}

// bantayConfig is the shipped production pipeline (collector/config/bantay.yaml):
// probeauth, refusals, memory_limiter → citytag (registry, require_authenticated_probe,
// default limits) → delta_to_cumulative → tsdb + heatmap + failure_events,
// events to the heatmap, the access policy on the listener. Left out: the
// loki exporter (no Loki runs in the benchmark) and the prometheus.yml's
// rules, alerting and self-scrape (the peer Prometheus has none either).
const bantayConfig = `extensions:
  probeauth:
    tokens: ${file:%[1]s/probe-tokens.yaml}
  refusals: {}
  bantay:
    endpoint: %[2]s
    access:
      credentials:
        loadgen: {role: reader, token_sha256: %[3]s}
    prometheus_config: %[1]s/prometheus.yml
    storage:
      path: %[1]s/data
      retention: 360h
      out_of_order_window: 30m
      max_concurrent_appends: 4
      block_duration: %[7]v
    query: {timeout: 10m} # as bantay-loadgen query gives Prometheus (benchQueryTimeout)
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %[4]s, auth: {authenticator: probeauth}, middlewares: [{id: refusals}]}
      http: {endpoint: %[5]s, auth: {authenticator: probeauth}, middlewares: [{id: refusals}]}
  bantay_events: {}
connectors:
  failure_events: {}
processors:
  memory_limiter: {check_interval: 1s, limit_percentage: 75, spike_limit_percentage: 20}
  citytag:
    probes: ${file:%[1]s/probes.yaml}
    require_authenticated_probe: true
  delta_to_cumulative: {max_stale: 10m, max_streams: 200000}
exporters:
  tsdb: {}
  heatmap: {}
service:
  extensions: [probeauth, refusals, bantay]
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, citytag, delta_to_cumulative]
      exporters: [tsdb, heatmap, failure_events]
    logs/events:
      receivers: [bantay_events, failure_events]
      exporters: [heatmap]
  telemetry:
    logs: {level: warn}
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %[6]d}}}
`

// defaultBlockDuration is the store's (and Prometheus's) 2h block span.
const defaultBlockDuration = 2 * time.Hour

// startBantay writes the fleet's registry and tokens and the collector's
// configuration (with the store's block span) into dir, starts bin (with
// args before its --config) and waits until it is ready.
func startBantay(ctx context.Context, dir string, fleet []otlpload.Probe, blocks time.Duration, bin string, args ...string) (*bantaySide, error) {
	b, err := launchBantay(dir, fleet, blocks, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := upstreampeer.WaitReady(ctx, "http://"+b.web+"/-/ready"); err != nil {
		b.stop()
		return nil, fmt.Errorf("bantay-collector: %w (log %s)", err, b.logPath)
	}
	return b, nil
}

// launchBantay is startBantay without the wait: the restart and cold-start
// measurements time the wait themselves.
func launchBantay(dir string, fleet []otlpload.Probe, blocks time.Duration, bin string, args ...string) (*bantaySide, error) {
	if err := writeFleet(dir, fleet); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {}\n"), 0o644); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(4)
	if err != nil {
		return nil, err
	}
	b := &bantaySide{web: addrs[0], grpc: addrs[1], otlpHTTP: addrs[2], readerToken: rand.Text(), logPath: filepath.Join(dir, "collector.log")}
	_, port, _ := net.SplitHostPort(addrs[3])
	fmt.Sscan(port, &b.telemetry)
	sum := sha256.Sum256([]byte(b.readerToken))
	cfg := fmt.Sprintf(bantayConfig, dir, b.web, hex.EncodeToString(sum[:]), b.grpc, b.otlpHTTP, b.telemetry, blocks)
	cfgPath := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(b.logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	b.cmd = exec.Command(bin, append(args, "--config", cfgPath)...)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bantay-collector: %w", err)
	}
	return b, nil
}

// stop ends the collector with SIGTERM, as an operator would (so a
// profiling collector writes its profile), and kills it after a minute.
func (b *bantaySide) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = b.cmd.Process.Kill()
		<-done
	}
}

// freeAddrs returns n 127.0.0.1 addresses whose ports were free a moment ago.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so no two are the same
		out = append(out, l.Addr().String())
	}
	return out, nil
}
