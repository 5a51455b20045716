// Command probefootprint measures what one bantay-probe costs the box it
// runs on: it starts the real probe binary with N targets on loopback
// addresses (udp: a Bantay reflector on each of 127.<net>.x.y:7001 (-net, 77 by default) in this
// process; icmp: the kernel answers every address of 127.0.0.0/8), an
// OTLP/gRPC sink that acknowledges every export, and reports the probe
// process's CPU share, resident memory and scheduling lateness over the
// measured window.
//
//	go build -o /tmp/bantay-probe ./probes/cmd/bantay-probe
//	go run ./probes/cmd/probefootprint -probe /tmp/bantay-probe -targets 1000 -duration 2m
//
// CPU is the probe's user + system time from /proc over the window; RSS is
// sampled every second (and the kernel's high-water mark, VmHWM, read at
// the end); lateness is the probe's own bantay.probe.schedule.lateness
// histogram (how late each run started), from the exports the sink
// received at the window's start and end.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/reflector"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "probefootprint:", err)
		os.Exit(1)
	}
}

type options struct {
	probe            string
	targets, count   int
	method           string
	interval         time.Duration
	timeout          time.Duration
	warmup, duration time.Duration
	log              string
	net              int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("probefootprint", flag.ContinueOnError)
	fs.StringVar(&o.probe, "probe", "bantay-probe", "the bantay-probe binary to measure")
	fs.IntVar(&o.targets, "targets", 1000, "targets, each on its own loopback address")
	fs.StringVar(&o.method, "method", "udp", "udp (a reflector per address, in this process) or icmp (the kernel answers)")
	fs.IntVar(&o.count, "count", 5, "probes per round")
	fs.DurationVar(&o.interval, "interval", 15*time.Second, "each target's interval, and the export interval")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "each probe's timeout")
	fs.DurationVar(&o.warmup, "warmup", 30*time.Second, "time before the measured window (every target's first run starts within one interval)")
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "the measured window; at most 30m")
	fs.StringVar(&o.log, "log", "", "keep the probe's log (stderr) in this file; by default it is removed")
	fs.IntVar(&o.net, "net", 77, "the second octet of the targets' loopback addresses (127.<net>.x.y), so two runs on one machine need not share them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.targets < 1 || o.targets > 250*250:
		return fmt.Errorf("-targets %d: want 1..62500 (one loopback address each)", o.targets)
	case o.net < 1 || o.net > 254:
		return fmt.Errorf("-net %d: want 1..254 (targets are 127.<net>.x.y)", o.net)
	case o.method != "udp" && o.method != "icmp":
		return fmt.Errorf("-method %q: want udp or icmp", o.method)
	case o.duration <= 0 || o.duration > 30*time.Minute:
		return fmt.Errorf("-duration %s: want more than 0 and at most 30m", o.duration)
	case o.duration <= o.interval:
		return fmt.Errorf("-duration %s: want more than one -interval (%s), so that two exports fall in the window", o.duration, o.interval)
	case o.warmup < o.interval:
		return fmt.Errorf("-warmup %s: want at least one -interval (%s), so that every target runs before the window", o.warmup, o.interval)
	}
	probe, err := exec.LookPath(o.probe)
	if err != nil {
		return fmt.Errorf("-probe: %w (go build -o /tmp/bantay-probe ./probes/cmd/bantay-probe)", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	s, err := startSink(ctx)
	if err != nil {
		return err
	}
	if o.method == "udp" {
		if err := startReflectors(ctx, o); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "probefootprint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "probe.yaml")
	if err := os.WriteFile(cfg, []byte(config(o, s.addr)), 0o644); err != nil {
		return err
	}
	logPath := o.log
	if logPath == "" {
		logPath = filepath.Join(dir, "probe.log")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(probe, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	proc, err := procfs.NewProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bantay-probe (pid %d): %d %s targets × %d probes every %s, timeout %s; warm-up %s, window %s\n",
		cmd.Process.Pid, o.targets, o.method, o.count, o.interval, o.timeout, o.warmup, o.duration)

	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("bantay-probe exited: %v\n%s", err, log)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(o.warmup); err != nil {
		return err
	}
	startCPU, err := cpu(proc)
	if err != nil {
		return err
	}
	// The probe's counters are cumulative, so the runs between two exports
	// are the difference of their figures: the first export in the window
	// and the first after it.
	startWall, seen := time.Now(), s.latest().exports
	var before totals
	var rss []float64
	for end := startWall.Add(o.duration); time.Now().Before(end); {
		if err := wait(min(time.Second, time.Until(end))); err != nil {
			return err
		}
		if l := s.latest(); before.exports == 0 && l.exports > seen {
			before = l
		}
		st, err := proc.Stat()
		if err != nil {
			return err
		}
		rss = append(rss, float64(st.ResidentMemory()))
	}
	endCPU, err := cpu(proc)
	if err != nil {
		return err
	}
	wall := time.Since(startWall)
	status, err := proc.NewStatus()
	if err != nil {
		return err
	}
	if before.exports == 0 {
		return fmt.Errorf("no export in the %s window: make -duration longer than -interval", o.duration)
	}
	for seen = s.latest().exports; s.latest().exports == seen; {
		if err := wait(time.Second); err != nil {
			return err
		}
	}
	after := s.latest()
	log, _ := os.ReadFile(logPath)
	report(out, o, reportInput{cpu: endCPU - startCPU, wall: wall, rss: rss, hwm: status.VmHWM, before: before, after: after, log: string(log)})
	return nil
}

func cpu(p procfs.Proc) (float64, error) {
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.CPUTime(), nil
}

// address is target i's loopback address.
func (o options) address(i int) string { return fmt.Sprintf("127.%d.%d.%d", o.net, i/250, i%250+1) }

func config(o options, sink string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `probe: {id: footprint-01, city: Manila}
collector: {endpoint: %q, tls: {insecure: true}, export_interval: %s}
uplinks: [{name: pldt-fiber, carrier: PLDT, network_type: fiber}]
defaults: {interval: %s, timeout: %s}
targets:
`, sink, o.interval, o.interval, o.timeout)
	for i := range o.targets {
		addr := o.address(i)
		if o.method == "udp" {
			addr += ":7001"
		}
		fmt.Fprintf(&b, "  - {name: t%05d, dst_city: Davao, method: %s, address: %q, count: %d}\n", i, o.method, addr, o.count)
	}
	return b.String()
}

func startReflectors(ctx context.Context, o options) error {
	for i := range o.targets {
		r, err := reflector.Listen(o.address(i)+":7001", nil)
		if err != nil {
			return fmt.Errorf("reflector %d: %w", i, err)
		}
		go r.Serve(ctx)
	}
	return nil
}

// sink is an OTLP/gRPC metrics endpoint that acknowledges every export and
// keeps the latest cumulative totals the probe sent.
type sink struct {
	colmetricspb.UnimplementedMetricsServiceServer
	addr string
	mu   sync.Mutex
	last totals
}

// totals are the probe's cumulative figures as of one export.
type totals struct {
	at                 time.Time // when the sink received the export
	exports, points    int
	attempts, failures float64
	lateCount          uint64
	lateSum, lateMax   float64
	lateBuckets        []uint64
	lateBounds         []float64
}

func startSink(ctx context.Context) (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: l.Addr().String()}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(256 << 20))
	colmetricspb.RegisterMetricsServiceServer(srv, s)
	go srv.Serve(l)
	context.AfterFunc(ctx, srv.Stop)
	return s, nil
}

func (s *sink) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	t := totals{}
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				t.add(m)
			}
		}
	}
	s.mu.Lock()
	t.at, t.exports = time.Now(), s.last.exports+1
	t.points += s.last.points
	s.last = t
	s.mu.Unlock()
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

func (t *totals) add(m *metricspb.Metric) {
	switch m.GetName() {
	case metricmodel.Attempts, metricmodel.Failures:
		for _, p := range m.GetSum().GetDataPoints() {
			if m.GetName() == metricmodel.Attempts {
				t.attempts += number(p)
			} else {
				t.failures += number(p)
			}
		}
	case metricmodel.Lateness:
		for _, p := range m.GetHistogram().GetDataPoints() {
			t.lateCount += p.GetCount()
			t.lateSum += p.GetSum()
			t.lateMax = math.Max(t.lateMax, p.GetMax())
			t.lateBounds = p.GetExplicitBounds()
			if t.lateBuckets == nil {
				t.lateBuckets = make([]uint64, len(p.GetBucketCounts()))
			}
			for i, c := range p.GetBucketCounts() {
				t.lateBuckets[i] += c
			}
		}
	}
	for _, n := range [][]*metricspb.NumberDataPoint{m.GetSum().GetDataPoints(), m.GetGauge().GetDataPoints()} {
		t.points += len(n)
	}
	t.points += len(m.GetHistogram().GetDataPoints())
}

func number(p *metricspb.NumberDataPoint) float64 {
	if v, ok := p.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
		return float64(v.AsInt)
	}
	return p.GetAsDouble()
}

func (s *sink) latest() totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

type reportInput struct {
	cpu           float64
	wall          time.Duration
	rss           []float64
	hwm           uint64
	before, after totals
	log           string
}

func report(out io.Writer, o options, in reportInput) {
	var sum, peak float64
	for _, v := range in.rss {
		sum += v
		peak = math.Max(peak, v)
	}
	mib := func(b float64) float64 { return b / (1 << 20) }
	fmt.Fprintf(out, "CPU: %.2f s in %.0f s = %.2f %% of one core\n", in.cpu, in.wall.Seconds(), 100*in.cpu/in.wall.Seconds())
	fmt.Fprintf(out, "RSS: mean %.1f MiB, max %.1f MiB (%d samples); VmHWM %.1f MiB\n", mib(sum/float64(max(len(in.rss), 1))), mib(peak), len(in.rss), mib(float64(in.hwm)))
	if m := memoryLimit.FindStringSubmatch(in.log); m != nil {
		whose := "the probe's own"
		if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
			whose = "GOMEMLIMIT=" + v
		}
		fmt.Fprintf(out, "memory limit: %s (%s)\n", m[1], whose)
	}
	b, a := in.before, in.after
	span := a.at.Sub(b.at).Seconds()
	runs := a.lateCount - b.lateCount
	fmt.Fprintf(out, "between exports %.0f s apart: runs started %d (%.1f/s, want %.1f/s), attempts %.0f (%.1f/s), failures %.0f\n",
		span, runs, float64(runs)/span, float64(o.targets)/o.interval.Seconds(), a.attempts-b.attempts, (a.attempts-b.attempts)/span, a.failures-b.failures)
	if runs > 0 && len(a.lateBuckets) == len(b.lateBuckets) {
		fmt.Fprintf(out, "lateness: mean %.3f ms, p99 %s, max since start %.3f ms\n",
			1000*(a.lateSum-b.lateSum)/float64(runs), p99(a, b), 1000*a.lateMax)
	}
	fmt.Fprintf(out, "sink: %d exports, %d points in all\n", a.exports, a.points)
	socket, problems := false, 0
	for l := range strings.Lines(in.log) {
		switch {
		case !socket && strings.Contains(l, "socket="):
			socket = true
			fmt.Fprint(out, "probe log: ", l)
		case problems < 10 && (strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN")):
			problems++
			fmt.Fprint(out, "probe log: ", l)
		}
	}
}

// memoryLimit finds the soft memory limit in the probe's start line
// (memory_limit="43.4 MiB", or none).
var memoryLimit = regexp.MustCompile(`memory_limit="?([^"\s]+(?: MiB)?)"?`)

// p99 names the bucket of the window's lateness histogram that holds its
// 99th percentile ("≤ 1 ms"), from the counts of two cumulative exports.
func p99(a, b totals) string {
	var total uint64
	counts := make([]uint64, len(a.lateBuckets))
	for i := range counts {
		counts[i] = a.lateBuckets[i] - b.lateBuckets[i]
		total += counts[i]
	}
	var cum uint64
	for i, c := range counts {
		if cum += c; float64(cum) >= 0.99*float64(total) {
			if i < len(a.lateBounds) {
				return fmt.Sprintf("≤ %g ms", 1000*a.lateBounds[i])
			}
			return fmt.Sprintf("> %g ms", 1000*a.lateBounds[len(a.lateBounds)-1])
		}
	}
	return "none"
}
