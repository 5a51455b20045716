package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/upstreampeer"
)

// restartFlags is the restart measurement: a collector holding the fleet's
// series is stopped and started again, once killed (WAL replay) and once
// stopped cleanly (memory snapshot).
type restartFlags struct {
	fleetFlags
	dir        string
	load       time.Duration
	sides      string
	prometheus string
	jsonPath   string
}

// restartResult is one side's restarts.
type restartResult struct {
	Side string `json:"side"`
	// HeadSeries is the TSDB's head series before the first stop.
	HeadSeries int64     `json:"head_series"`
	Restarts   []restart `json:"restarts"`
}

// restart is one stop and start on the same data directory.
type restart struct {
	// How names the stop: "kill -9" or "SIGTERM", and what the start does.
	How string `json:"how"`
	// WALBytes is the size of the WAL directory when the process stopped.
	WALBytes int64 `json:"wal_bytes"`
	// StopS is how long a clean stop took (writing the snapshot); 0 for kill -9.
	StopS float64 `json:"stop_s"`
	// ReadyS is the time from the launch to /-/ready answering 200;
	// HeadSeriesS to the head holding the series it held before the stop.
	ReadyS      float64 `json:"ready_s"`
	HeadSeriesS float64 `json:"head_series_s"`
	// HeadSeriesAfter is what the head held then: fewer than before the
	// stop when the replay could not restore some (after a kill -9, series
	// records in the WAL's last, unwritten page; the TSDB logs "Unknown
	// series references").
	HeadSeriesAfter int64 `json:"head_series_after"`
	// RebuiltS is the time from the launch to the end of the heatmap's
	// rebuild from the store (bantay_heatmap_rebuilding 0), which runs
	// after ready; Bantay only.
	RebuiltS float64 `json:"rebuilt_s,omitempty"`
}

func restartCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var r restartFlags
	r.fleetFlags.register(fs)
	fs.StringVar(&r.dir, "dir", "", "working directory for configs, data and logs (required; it is emptied first)")
	fs.DurationVar(&r.load, "load", 45*time.Second, "how long to send at the probes' 15 s interval before each stop (at least 30s, so every series has samples in the WAL)")
	fs.StringVar(&r.sides, "sides", "bantay,prometheus", "bantay: the collector; prometheus: the upstream collector + Prometheus, Prometheus restarted")
	fs.StringVar(&r.prometheus, "prometheus", "/usr/bin/prometheus", "the reference Prometheus (Debian's 2.42)")
	fs.StringVar(&r.jsonPath, "json", "", "write the results to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if r.dir == "" {
		return errors.New("restart: -dir is required")
	}
	if r.load < 30*time.Second || r.load > 10*time.Minute {
		return fmt.Errorf("-load %v: want 30s to 10m", r.load)
	}
	fleet, err := r.fleet()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	var results []restartResult
	for side := range strings.SplitSeq(r.sides, ",") {
		dir := filepath.Join(r.dir, side)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var res restartResult
		switch side {
		case "bantay":
			res, err = r.bantay(ctx, dir, fleet, stderr)
		case "prometheus":
			res, err = r.peer(ctx, dir, fleet, stderr)
		default:
			return fmt.Errorf("-sides: %q is not bantay or prometheus", side)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		results = append(results, res)
	}
	for _, res := range results {
		fmt.Fprintf(stdout, "%s, %d head series:\n", res.Side, res.HeadSeries)
		for _, s := range res.Restarts {
			fmt.Fprintf(stdout, "  %-40s WAL %5d MiB  stop %6.2f s  ready %6.2f s  all series in the head %6.2f s",
				s.How, s.WALBytes>>20, s.StopS, s.ReadyS, s.HeadSeriesS)
			if s.HeadSeriesAfter < res.HeadSeries {
				fmt.Fprintf(stdout, " (%d series not restored)", res.HeadSeries-s.HeadSeriesAfter)
			}
			if s.RebuiltS > 0 {
				fmt.Fprintf(stdout, "  heatmap rebuilt %6.2f s", s.RebuiltS)
			}
			fmt.Fprintln(stdout)
		}
	}
	if r.jsonPath != "" {
		return writeJSONFile(r.jsonPath, results)
	}
	return nil
}

// sendLoad sends the fleet's exports at the probes' interval for d.
func (r *restartFlags) sendLoad(ctx context.Context, endpoint, tokenDir string, peer bool, log io.Writer) error {
	rf := runFlags{fleetFlags: r.fleetFlags, endpoint: endpoint, protocol: otlpload.GRPC, interval: 15 * time.Second,
		duration: r.load, timeout: time.Minute, tokenDir: tokenDir, peer: peer, progress: true}
	sum, err := rf.execute(ctx, log)
	if err != nil {
		return err
	}
	if sum.AckedPoints == 0 {
		return fmt.Errorf("load: nothing acknowledged, refused %v (%v)", sum.RefusedPoints, sum.RefusalExamples)
	}
	// Overload refusals are retryable and the next export of the uplink
	// carries the same series: what counts is the head's series, measured after.
	fmt.Fprintf(log, "load: %d points acknowledged, refused %v\n", sum.AckedPoints, sum.RefusedPoints)
	return nil
}

func (r *restartFlags) bantay(ctx context.Context, dir string, fleet []otlpload.Probe, log io.Writer) (restartResult, error) {
	res := restartResult{Side: "bantay"}
	bin, err := buildCollector(ctx, dir)
	if err != nil {
		return res, err
	}
	start := func() (*bantaySide, time.Time, error) {
		launched := time.Now()
		b, err := launchBantay(dir, fleet, defaultBlockDuration, bin)
		return b, launched, err
	}
	b, launched, err := start()
	if err != nil {
		return res, err
	}
	defer func() { b.stop() }()
	if _, err := pollReady(ctx, "http://"+b.web+"/-/ready", launched); err != nil {
		return res, fmt.Errorf("%w (log %s)", err, b.logPath)
	}
	metrics := func(b *bantaySide) metricsEndpoint {
		return metricsEndpoint{url: "http://" + b.web + "/metrics", token: b.readerToken}
	}
	fmt.Fprintf(log, "bantay: loading %d probes for %v\n", len(fleet), r.load)
	if err := r.sendLoad(ctx, b.grpc, filepath.Join(dir, "tokens"), false, log); err != nil {
		return res, err
	}
	if res.HeadSeries, err = metrics(b).headSeries(ctx); err != nil {
		return res, err
	}
	wal := filepath.Join(dir, "data", "wal")
	for _, how := range []string{"kill -9: WAL replay", "SIGTERM: memory snapshot"} {
		rs := restart{How: how}
		if rs.WALBytes, err = treeSize(wal); err != nil {
			return res, err
		}
		stopped := time.Now()
		if strings.HasPrefix(how, "kill") {
			_ = b.cmd.Process.Kill()
			_ = b.cmd.Wait()
		} else {
			b.stop()
			rs.StopS = time.Since(stopped).Seconds()
		}
		if b, launched, err = start(); err != nil {
			return res, err
		}
		ready, err := pollReady(ctx, "http://"+b.web+"/-/ready", launched)
		if err != nil {
			return res, fmt.Errorf("%s: %w (log %s)", how, err, b.logPath)
		}
		rs.ReadyS = ready.Seconds()
		if rs.HeadSeriesS, rs.HeadSeriesAfter, err = metrics(b).awaitSeries(ctx, res.HeadSeries, launched); err != nil {
			return res, fmt.Errorf("%s: %w", how, err)
		}
		if rs.RebuiltS, err = metrics(b).awaitRebuilt(ctx, launched); err != nil {
			return res, fmt.Errorf("%s: %w", how, err)
		}
		fmt.Fprintf(log, "bantay: %s: ready after %.2f s, heatmap rebuilt after %.2f s\n", how, rs.ReadyS, rs.RebuiltS)
		res.Restarts = append(res.Restarts, rs)
		if strings.HasPrefix(how, "kill") {
			// More WAL after the replay, as a collector that ran on would have.
			if err := r.sendLoad(ctx, b.grpc, filepath.Join(dir, "tokens"), false, log); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// peer restarts the upstream pipeline's Prometheus: killed (WAL replay),
// stopped cleanly (WAL replay: 2.42's default), and stopped cleanly with
// its memory-snapshot-on-shutdown feature.
func (r *restartFlags) peer(ctx context.Context, dir string, fleet []otlpload.Probe, log io.Writer) (restartResult, error) {
	res := restartResult{Side: "prometheus"}
	bin, err := upstreampeer.Build(ctx, log)
	if err != nil {
		return res, err
	}
	addrs, err := freeAddrs(4)
	if err != nil {
		return res, err
	}
	tel, _ := strconv.Atoi(addrs[3][strings.LastIndexByte(addrs[3], ':')+1:])
	p, err := upstreampeer.Start(ctx, upstreampeer.Options{CollectorBinary: bin, PrometheusBinary: r.prometheus, Dir: dir,
		OTLPGRPC: addrs[0], OTLPHTTP: addrs[1], PrometheusAddr: addrs[2], TelemetryPort: tel})
	if err != nil {
		return res, err
	}
	defer p.Stop()
	for i := range fleet {
		fleet[i].Token = ""
	}
	fmt.Fprintf(log, "prometheus: loading %d probes for %v\n", len(fleet), r.load)
	if err := r.sendLoad(ctx, p.OTLPGRPC, "", true, log); err != nil {
		return res, err
	}
	m := metricsEndpoint{url: p.PrometheusURL + "/metrics"}
	// The peer's queues deliver after they acknowledge; the head is full
	// when its series stop growing.
	if res.HeadSeries, err = m.settledSeries(ctx); err != nil {
		return res, err
	}
	_ = p.Collector.Process.Kill() // nothing more to send; Prometheus alone restarts
	data := filepath.Join(dir, "prometheus-data")
	proc := p.Prometheus.Process
	// The Prometheus running when this returns is one this function started
	// (p.Stop knows only the first): end it on every way out.
	defer func() {
		_ = proc.Kill()
		_, _ = proc.Wait()
	}()
	for _, step := range []struct {
		how      string
		kill     bool
		features string // of the start after the stop
	}{
		{"kill -9: WAL replay", true, ""},
		{"SIGTERM: WAL replay (2.42's default)", false, ""},
		// The start before this one ran without the feature, so this stop
		// wrote no snapshot; stop it once more with the feature on.
		{"SIGTERM: memory snapshot (feature flag)", false, "memory-snapshot-on-shutdown"},
	} {
		if step.features != "" {
			if err := stopProcess(proc); err != nil {
				return res, err
			}
			if proc, err = r.startPrometheus(dir, data, addrs[2], step.features); err != nil {
				return res, err
			}
		}
		rs := restart{How: step.how}
		if rs.WALBytes, err = treeSize(filepath.Join(data, "wal")); err != nil {
			return res, err
		}
		stopped := time.Now()
		if step.kill {
			_ = proc.Kill()
			_, _ = proc.Wait()
		} else {
			if err := stopProcess(proc); err != nil {
				return res, err
			}
			rs.StopS = time.Since(stopped).Seconds()
		}
		launched := time.Now()
		if proc, err = r.startPrometheus(dir, data, addrs[2], step.features); err != nil {
			return res, err
		}
		ready, err := pollReady(ctx, p.PrometheusURL+"/-/ready", launched)
		if err != nil {
			return res, err
		}
		rs.ReadyS = ready.Seconds()
		if rs.HeadSeriesS, rs.HeadSeriesAfter, err = m.awaitSeries(ctx, res.HeadSeries, launched); err != nil {
			return res, fmt.Errorf("%s: %w", step.how, err)
		}
		fmt.Fprintf(log, "prometheus: %s: ready after %.2f s\n", step.how, rs.ReadyS)
		res.Restarts = append(res.Restarts, rs)
	}
	return res, nil
}

// startPrometheus starts Prometheus again on the peer's data directory and address.
func (r *restartFlags) startPrometheus(dir, data, addr, features string) (*os.Process, error) {
	args := []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path=" + data,
		"--web.listen-address=" + addr, "--web.enable-remote-write-receiver"}
	if features != "" {
		args = append(args, "--enable-feature="+features)
	}
	log, err := os.OpenFile(filepath.Join(dir, "prometheus-restarts.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	attr := &os.ProcAttr{Files: []*os.File{nil, log, log}}
	return os.StartProcess(r.prometheus, append([]string{r.prometheus}, args...), attr)
}

// stopProcess sends SIGTERM and waits for the exit, killing after 5 minutes.
func stopProcess(p *os.Process) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { _, err := p.Wait(); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Minute):
		_ = p.Kill()
		return errors.New("did not stop within 5 minutes; killed")
	}
}

// metricsEndpoint is a side's Prometheus-format /metrics, which carries the
// TSDB's prometheus_tsdb_head_series.
type metricsEndpoint struct{ url, token string }

func (m metricsEndpoint) headSeries(ctx context.Context) (int64, error) {
	v, err := m.sample(ctx, "prometheus_tsdb_head_series")
	return int64(v), err
}

// sample reads the value of an unlabelled sample (a gauge) from the page.
func (m metricsEndpoint) sample(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return 0, err
	}
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: HTTP %d", m.url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", m.url, name)
}

// awaitRebuilt polls until the heatmap's rebuild has ended
// (bantay_heatmap_rebuilding 0), every 50 ms for at most 10 minutes, and
// returns how long after launched that was.
func (m metricsEndpoint) awaitRebuilt(ctx context.Context, launched time.Time) (float64, error) {
	var lastErr error
	for range 12_000 {
		v, err := m.sample(ctx, "bantay_heatmap_rebuilding")
		if err == nil && v == 0 {
			return time.Since(launched).Seconds(), nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("the heatmap was still rebuilding after 10 minutes (%v)", lastErr)
}

// awaitSeries polls until the head holds want series (the WAL replayed or
// the snapshot loaded), or holds a steady number for 10 s (the replay could
// not restore them all: the start is over all the same), every 50 ms for
// at most 10 minutes. It returns how long after launched the head reached
// the number it holds, and that number.
func (m metricsEndpoint) awaitSeries(ctx context.Context, want int64, launched time.Time) (float64, int64, error) {
	var last int64
	var lastErr error
	var reached time.Time // when the head first held last
	for range 12_000 {
		n, err := m.headSeries(ctx)
		switch {
		case err == nil && n >= want:
			return time.Since(launched).Seconds(), n, nil
		case err == nil && n > 0 && n == last && time.Since(reached) >= 10*time.Second:
			return reached.Sub(launched).Seconds(), n, nil
		case err == nil && n != last:
			last, reached = n, time.Now()
		}
		lastErr = err
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("head has %d of %d series after 10 minutes (%v)", last, want, lastErr)
}

// settledSeries waits until the head's series count has not changed for
// 10 s (at most 10 minutes) and returns it.
func (m metricsEndpoint) settledSeries(ctx context.Context) (int64, error) {
	var last int64 = -1
	same := 0
	for range 600 {
		n, err := m.headSeries(ctx)
		if err != nil {
			return 0, err
		}
		if n == last {
			if same++; same == 10 {
				return n, nil
			}
		} else {
			last, same = n, 0
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return 0, fmt.Errorf("head series still changing after 10 minutes (%d)", last)
}
