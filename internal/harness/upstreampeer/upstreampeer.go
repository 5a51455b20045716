// Package upstreampeer builds and runs the benchmark's upstream peer: the
// OpenTelemetry Collector built with OCB from the official v0.165.0 modules
// with the standard equivalent of Bantay's ingest pipeline (otlp → batch →
// contrib prometheusremotewrite) writing to Debian's Prometheus 2.42 with its
// remote-write receiver. Nothing of it is committed: the distribution is
// generated and compiled into the Go cache directory
// ($(go env GOCACHE)/bantay-peers) the first time and reused after.
package upstreampeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Version is the upstream collector release the peer is built from, and
// ProvidersVersion the confmap providers' (the collector's 1.x modules).
const (
	Version          = "0.165.0"
	ProvidersVersion = "1.71.0"
)

// manifest is OCB's build configuration. Both the file and the env confmap
// providers are needed: without the env one the binary refuses to start
// ("DefaultScheme not found").
const manifest = `dist:
  name: otelcol-peer
  description: Bantay benchmark peer (upstream collector, standard pipeline)
  output_path: %s
  version: ` + Version + `
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v` + Version + `
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor v` + Version + `
exporters:
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter v` + Version + `
providers:
  - gomod: go.opentelemetry.io/collector/confmap/provider/fileprovider v` + ProvidersVersion + `
  - gomod: go.opentelemetry.io/collector/confmap/provider/envprovider v` + ProvidersVersion + `
`

// CacheDir is where the peer's distribution is generated and built.
func CacheDir() (string, error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOCACHE: %w", err)
	}
	gocache := strings.TrimSpace(string(out))
	if gocache == "" || gocache == "off" {
		return "", errors.New("the Go build cache is off (GOCACHE); the peer is cached there")
	}
	return filepath.Join(gocache, "bantay-peers", "otelcol-v"+Version), nil
}

// Build returns the path of the peer collector binary, generating and
// compiling it with OCB (go.opentelemetry.io/collector/cmd/builder, same
// version) on first use, which takes minutes. log receives the builder's
// output.
func Build(ctx context.Context, log io.Writer) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "dist", "otelcol-peer")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, manifest, filepath.Join(dir, "dist")), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "run", "go.opentelemetry.io/collector/cmd/builder@v"+Version, "--config", path)
	cmd.Dir = dir // outside any module, so the builder's own go.mod decides
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the peer with OCB (manifest %s): %w", path, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("OCB finished but %s is missing: %w", bin, err)
	}
	return bin, nil
}

// Peer is a running upstream pair: Prometheus and the collector in front of it.
type Peer struct {
	// OTLPGRPC and OTLPHTTP are the collector's receiver addresses (host:port).
	OTLPGRPC, OTLPHTTP string
	// PrometheusURL is the Prometheus server's base URL, for queries.
	PrometheusURL string
	// Collector and Prometheus are the two processes.
	Collector, Prometheus *exec.Cmd
}

// Options place the peer's processes.
type Options struct {
	// CollectorBinary is from Build; PrometheusBinary is Debian's /usr/bin/prometheus.
	CollectorBinary, PrometheusBinary string
	// Dir holds the configs, the TSDB and the logs.
	Dir string
	// OTLPGRPC, OTLPHTTP, PrometheusAddr, TelemetryPort: free 127.0.0.1 listeners.
	OTLPGRPC, OTLPHTTP, PrometheusAddr string
	TelemetryPort                      int
}

// collectorConfig is the standard pipeline. resource_constant_labels makes
// the resource's uplink attributes labels (bantay_uplink_carrier,
// bantay_uplink_network_type), the upstream equivalent of citytag's carrier
// and network_type: without them a probe's two uplinks would write the
// same series.
const collectorConfig = `receivers:
  otlp:
    protocols:
      grpc: {endpoint: %s}
      http: {endpoint: %s}
processors:
  batch: {}
exporters:
  prometheus_remote_write:
    endpoint: http://%s/api/v1/write
    resource_constant_labels: {included: ["bantay.uplink.*"]}
service:
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [prometheus_remote_write]
  telemetry:
    logs: {level: warn}
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}
`

// Start runs Prometheus and then the collector and returns once both answer.
// Stop the peer with Stop.
func Start(ctx context.Context, o Options) (*Peer, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	promCfg := filepath.Join(o.Dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte("global: {}\n"), 0o644); err != nil {
		return nil, err
	}
	p := &Peer{OTLPGRPC: o.OTLPGRPC, OTLPHTTP: o.OTLPHTTP, PrometheusURL: "http://" + o.PrometheusAddr}
	var err error
	p.Prometheus, err = startLogged(o.Dir, "prometheus", o.PrometheusBinary,
		"--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(o.Dir, "prometheus-data"),
		"--web.listen-address="+o.PrometheusAddr, "--web.enable-remote-write-receiver")
	if err != nil {
		return nil, err
	}
	if err := WaitReady(ctx, p.PrometheusURL+"/-/ready"); err != nil {
		p.Stop()
		return nil, fmt.Errorf("prometheus: %w (log in %s)", err, o.Dir)
	}
	colCfg := filepath.Join(o.Dir, "otelcol.yaml")
	if err := os.WriteFile(colCfg, fmt.Appendf(nil, collectorConfig, o.OTLPGRPC, o.OTLPHTTP, o.PrometheusAddr, o.TelemetryPort), 0o644); err != nil {
		p.Stop()
		return nil, err
	}
	p.Collector, err = startLogged(o.Dir, "otelcol", o.CollectorBinary, "--config", colCfg)
	if err != nil {
		p.Stop()
		return nil, err
	}
	if err := WaitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", o.TelemetryPort)); err != nil {
		p.Stop()
		return nil, fmt.Errorf("peer collector: %w (log in %s)", err, o.Dir)
	}
	return p, nil
}

// Stop kills both processes and waits for them.
func (p *Peer) Stop() {
	for _, c := range []*exec.Cmd{p.Collector, p.Prometheus} {
		if c != nil && c.Process != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
}

func startLogged(dir, name, bin string, args ...string) (*exec.Cmd, error) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	// The child gets the file's descriptor itself (no copying goroutine),
	// so the parent's copy is closed at once.
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

// WaitReady polls url until it answers 200, for at most a minute: the
// benchmark waits for both sides' processes with it.
func WaitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within a minute: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
