package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/procfs"

	"github.com/bantay-noc/bantay/internal/harness/upstreampeer"
)

// benchFlags is a benchmark: the same steps against each side.
type benchFlags struct {
	runFlags
	rates      string
	step       time.Duration
	warmup     time.Duration
	pause      time.Duration
	sides      string
	prometheus string
	workDir    string
	cpuProfile string
	memProfile string
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var b benchFlags
	b.fleetFlags.register(fs)
	fs.StringVar(&b.protocol, "protocol", "grpc", "grpc or http")
	fs.IntVar(&b.concurrency, "concurrency", 0, "exports in flight at most (0: one per probe uplink)")
	fs.DurationVar(&b.timeout, "timeout", 10*time.Second, "timeout of each export")
	fs.DurationVar(&b.queryableAfter, "queryable-after", 2*time.Second, "how long after a step's last acknowledgement its stored points are counted")
	fs.StringVar(&b.jsonPath, "json", "", "write every step's summary with its measurements to this file")
	fs.StringVar(&b.rates, "rates", "5000,10000,20000,flat", "offered points/s of each step, in order; flat = flat out")
	fs.DurationVar(&b.step, "step", 20*time.Second, "length of each step (at most 1m: the machine is shared)")
	fs.DurationVar(&b.warmup, "warmup", 5*time.Second, "a first, unreported step at the first rate, so series creation is not measured")
	fs.DurationVar(&b.pause, "pause", 3*time.Second, "pause between steps")
	fs.StringVar(&b.sides, "sides", "bantay,peer", "which sides to run: bantay, peer")
	fs.StringVar(&b.prometheus, "prometheus", "/usr/bin/prometheus", "the peer's Prometheus (Debian's 2.42)")
	fs.StringVar(&b.workDir, "dir", "", "working directory for configs, data and logs (default: a new temporary one, removed after)")
	fs.StringVar(&b.cpuProfile, "cpuprofile", "", "run Bantay's collector in a bantay-loadgen process that writes its CPU profile here (adds the profiler's cost)")
	fs.StringVar(&b.memProfile, "memprofile", "", "run Bantay's collector in a bantay-loadgen process that writes a heap profile here when the run ends (before the collector stops)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	steps, err := parseRates(b.rates)
	if err != nil {
		return err
	}
	if b.step <= 0 || b.step > time.Minute {
		return fmt.Errorf("-step %v: want > 0 and at most 1m", b.step)
	}
	sides := strings.Split(b.sides, ",")
	for _, s := range sides {
		if s != "bantay" && s != "peer" {
			return fmt.Errorf("-sides: %q is not bantay or peer", s)
		}
	}
	if _, err := b.fleet(); err != nil {
		return err
	}
	dir := b.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bantay-bench"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	var results []stepResult
	for _, side := range sides {
		r, err := b.runSide(ctx, side, filepath.Join(dir, side), steps, stderr)
		results = append(results, r...)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
	}
	printTable(stdout, results)
	if b.jsonPath != "" {
		return writeJSONFile(b.jsonPath, results)
	}
	return nil
}

// parseRates reads -rates: points/s, or 0 for "flat".
func parseRates(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		if f == "flat" {
			out = append(out, 0)
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive rate or flat", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// stepResult is one step on one side, with the resources its processes used.
type stepResult struct {
	Side string `json:"side"`
	Summary
	// CPUSeconds is the side's processes' CPU time over the step (until its
	// stored points were counted); LoadCPUSeconds the load tool's own.
	CPUSeconds     float64 `json:"cpu_s"`
	LoadCPUSeconds float64 `json:"loadgen_cpu_s"`
	WallSeconds    float64 `json:"wall_s"`
	// PeakRSSBytes is the highest sum of the side's processes' RSS seen
	// (sampled every 250 ms) during the step.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// side is what runSide needs of a running side.
type side struct {
	pids            []int
	grpc, otlpHTTP  string // host:port
	queryURL, wsURL string
	token, tokenDir string
	peer            bool
	stop            func()
}

func (b *benchFlags) runSide(ctx context.Context, name, dir string, steps []float64, log io.Writer) ([]stepResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s, err := b.start(ctx, name, dir, log)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	rf := b.runFlags
	rf.endpoint, rf.queryURL, rf.wsURL, rf.token, rf.peer, rf.tokenDir = s.grpc, s.queryURL, s.wsURL, s.token, s.peer, s.tokenDir
	if rf.protocol == "http" {
		rf.endpoint = "http://" + s.otlpHTTP
	}
	rf.progress = true
	var out []stepResult
	if b.warmup > 0 {
		fmt.Fprintf(log, "%s: warm-up %v\n", name, b.warmup)
		w := rf.forStep(steps[0], b.warmup)
		if _, err := w.execute(ctx, log); err != nil {
			return nil, err
		}
	}
	for _, rate := range steps {
		time.Sleep(b.pause)
		fmt.Fprintf(log, "%s: step %s for %v\n", name, rateName(rate), b.step)
		r, err := measureStep(ctx, s.pids, func() (Summary, error) {
			st := rf.forStep(rate, b.step)
			return st.execute(ctx, log)
		})
		if err != nil {
			return out, err
		}
		r.Side = name
		out = append(out, r)
	}
	return out, nil
}

func rateName(rate float64) string {
	if rate == 0 {
		return "flat out"
	}
	return fmt.Sprintf("%.0f points/s", rate)
}

func (f runFlags) forStep(rate float64, d time.Duration) *runFlags {
	f.rate, f.flatOut, f.duration = rate, rate == 0, d
	return &f
}

// measureStep runs step and measures the processes' CPU time and peak RSS
// meanwhile, and the load tool's own CPU time.
func measureStep(ctx context.Context, pids []int, step func() (Summary, error)) (stepResult, error) {
	cpu0, self0, err := cpuTimes(pids)
	if err != nil {
		return stepResult{}, err
	}
	var peak int64
	sampling, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, rss, err := usage(pids); err == nil {
				peak = max(peak, rss)
			}
			select {
			case <-sampling.Done():
				return
			case <-tick.C:
			}
		}
	})
	start := time.Now()
	sum, err := step()
	wall := time.Since(start)
	stop()
	wg.Wait()
	if err != nil {
		return stepResult{}, err
	}
	cpu1, self1, err := cpuTimes(pids)
	if err != nil {
		return stepResult{}, err
	}
	return stepResult{Summary: sum, CPUSeconds: cpu1 - cpu0, LoadCPUSeconds: self1 - self0, WallSeconds: wall.Seconds(), PeakRSSBytes: peak}, nil
}

// cpuTimes is the CPU seconds of pids and of this process.
func cpuTimes(pids []int) (side, self float64, err error) {
	if side, _, err = usage(pids); err != nil {
		return 0, 0, err
	}
	self, _, err = usage(nil)
	return side, self, err
}

// usage sums the CPU seconds and resident bytes of pids (of this process
// when pids is nil), from /proc.
func usage(pids []int) (cpu float64, rss int64, err error) {
	procs := []procfs.Proc{}
	if pids == nil {
		p, err := procfs.Self()
		if err != nil {
			return 0, 0, err
		}
		procs = append(procs, p)
	}
	for _, pid := range pids {
		p, err := procfs.NewProc(pid)
		if err != nil {
			return 0, 0, fmt.Errorf("process %d: %w", pid, err)
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			return 0, 0, fmt.Errorf("process %d: %w", p.PID, err)
		}
		cpu += st.CPUTime()
		rss += int64(st.ResidentMemory())
	}
	return cpu, rss, nil
}

// start runs one side with the fleet configured.
func (b *benchFlags) start(ctx context.Context, name, dir string, log io.Writer) (*side, error) {
	fleet, err := b.fleet()
	if err != nil {
		return nil, err
	}
	if name == "peer" {
		bin, err := upstreampeer.Build(ctx, log)
		if err != nil {
			return nil, err
		}
		addrs, err := freeAddrs(4)
		if err != nil {
			return nil, err
		}
		var tel int
		fmt.Sscan(addrs[3][strings.LastIndexByte(addrs[3], ':')+1:], &tel)
		p, err := upstreampeer.Start(ctx, upstreampeer.Options{CollectorBinary: bin, PrometheusBinary: b.prometheus, Dir: dir,
			OTLPGRPC: addrs[0], OTLPHTTP: addrs[1], PrometheusAddr: addrs[2], TelemetryPort: tel})
		if err != nil {
			return nil, err
		}
		return &side{pids: []int{p.Collector.Process.Pid, p.Prometheus.Process.Pid}, grpc: p.OTLPGRPC, queryURL: p.PrometheusURL,
			peer: true, stop: p.Stop, otlpHTTP: p.OTLPHTTP}, nil
	}
	var bin string
	var args []string
	if b.cpuProfile != "" || b.memProfile != "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin, args = self, []string{"collector", "-cpuprofile", b.cpuProfile, "-memprofile", b.memProfile}
	} else if bin, err = buildCollector(ctx, dir); err != nil {
		return nil, err
	}
	bs, err := startBantay(ctx, dir, fleet, defaultBlockDuration, bin, args...)
	if err != nil {
		return nil, err
	}
	return &side{pids: []int{bs.cmd.Process.Pid}, grpc: bs.grpc, otlpHTTP: bs.otlpHTTP, queryURL: "http://" + bs.web, wsURL: "ws://" + bs.web + "/ws",
		token: bs.readerToken, stop: bs.stop, tokenDir: filepath.Join(dir, "tokens")}, nil
}

func printTable(w io.Writer, results []stepResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\toffered/s\tacked/s\trefused\tskipped\tqueryable\tAPI fresh p50/p99 s\tws p99 s\tCPU cores\tCPU-s/1M acked\tCPU-s/1M stored\tloadgen CPU-s/1M\tpeak RSS MiB\t")
	for _, r := range results {
		perM := func(cpu float64, points int64) string {
			if points == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", cpu/float64(points)*1e6)
		}
		var refused int64
		for _, n := range r.RefusedPoints {
			refused += n
		}
		q, fresh, ws, stored := "-", "-", "-", "-"
		if r.Queryable != nil {
			q = fmt.Sprintf("%.1f %%", 100*r.Queryable.Share)
			stored = perM(r.CPUSeconds, r.Queryable.StoredPoints)
		}
		if f := r.APIFreshness; f != nil {
			fresh = fmt.Sprintf("%.3f / %.3f", f.P50, f.P99)
			if f.NotSeen > 0 {
				fresh += fmt.Sprintf(" (%d not seen)", f.NotSeen)
			}
		}
		if f := r.WSFreshness; f != nil {
			ws = fmt.Sprintf("%.3f", f.P99)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%d\t%d\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%.0f\t\n", r.Side, r.OfferedPerS, r.AckedPerS, refused, r.SkippedPoints, q, fresh, ws,
			r.CPUSeconds/r.WallSeconds, perM(r.CPUSeconds, r.AckedPoints), stored, perM(r.LoadCPUSeconds, r.AckedPoints), float64(r.PeakRSSBytes)/(1<<20))
	}
	tw.Flush()
}
