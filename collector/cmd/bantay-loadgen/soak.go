package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// soakFlags is a soak: one long run at a steady rate against a collector
// this tool starts, sampling the collector's resources meanwhile.
type soakFlags struct {
	runFlags
	every   time.Duration
	blocks  time.Duration
	workDir string
}

func soakCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s soakFlags
	s.fleetFlags.register(fs)
	fs.StringVar(&s.protocol, "protocol", "grpc", "grpc or http")
	fs.Float64Var(&s.rate, "rate", 5000, "offered points/s over the fleet")
	fs.DurationVar(&s.duration, "duration", 30*time.Minute, "how long to send")
	fs.DurationVar(&s.timeout, "timeout", 10*time.Second, "timeout of each export")
	fs.DurationVar(&s.queryableAfter, "queryable-after", 2*time.Second, "how long after the last acknowledgement the stored points are counted")
	fs.DurationVar(&s.every, "every", 30*time.Second, "how often the collector's RSS, goroutines, open files and store are sampled")
	fs.DurationVar(&s.blocks, "block-duration", 10*time.Minute, "the store's block span (storage.block_duration): the head compacts once it spans 1.5× this, so the default 2h would first compact after 3h")
	fs.StringVar(&s.jsonPath, "json", "", "write the run's summary and every sample to this file")
	fs.StringVar(&s.workDir, "dir", "", "working directory for config, data and log (default: a new temporary one, removed after)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case s.every < time.Second:
		return fmt.Errorf("-every %v: want at least 1s", s.every)
	case s.duration < s.every:
		return fmt.Errorf("-duration %v: want at least one -every (%v)", s.duration, s.every)
	case s.rate <= 0:
		return fmt.Errorf("-rate %v: want > 0 points/s", s.rate)
	}
	fleet, err := s.fleet()
	if err != nil {
		return err
	}
	dir := s.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bantay-soak"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	bin, err := buildCollector(ctx, dir)
	if err != nil {
		return err
	}
	b, err := startBantay(ctx, dir, fleet, s.blocks, bin)
	if err != nil {
		return err
	}
	defer b.stop()
	rf := s.runFlags
	rf.endpoint, rf.queryURL, rf.token, rf.tokenDir = b.grpc, "http://"+b.web, b.readerToken, filepath.Join(dir, "tokens")
	if rf.protocol == "http" {
		rf.endpoint = "http://" + b.otlpHTTP
	}
	rf.progress = false // the samples are the progress
	res, err := soak(ctx, &rf, b, s.every, stderr)
	if err != nil {
		return err
	}
	res.BlockDurationS = s.blocks.Seconds()
	printSamples(stdout, res.Samples)
	printDrift(stdout, res)
	if s.jsonPath == "" {
		return nil
	}
	return writeJSONFile(s.jsonPath, res)
}

// soakResult is a soak's load summary and its samples of the collector.
type soakResult struct {
	Summary
	BlockDurationS float64      `json:"block_duration_s"`
	Samples        []soakSample `json:"samples"`
}

// soakSample is the collector at one moment: from /proc (RSS, threads, open
// files) and from its own /metrics (goroutines, heap, the store's head and
// compactions, samples appended so far).
type soakSample struct {
	AtS             float64 `json:"at_s"`
	RSSBytes        int64   `json:"rss_bytes"`
	Threads         int     `json:"threads"`
	OpenFDs         int     `json:"open_fds"`
	Goroutines      float64 `json:"goroutines"`
	HeapInuseBytes  float64 `json:"heap_inuse_bytes"`
	HeadSeries      float64 `json:"head_series"`
	HeadChunks      float64 `json:"head_chunks"`
	Blocks          float64 `json:"blocks_loaded"`
	Compactions     float64 `json:"compactions"`
	AppendedSamples float64 `json:"appended_samples"`
}

// soak runs rf's load for its duration and samples b every period, from the
// start (before any load) to the end of the load.
func soak(ctx context.Context, rf *runFlags, b *bantaySide, every time.Duration, log io.Writer) (soakResult, error) {
	start := time.Now()
	var res soakResult
	var sampleErr error
	sampling, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s, err := sampleCollector(ctx, b)
			if err != nil {
				sampleErr = err
				return
			}
			s.AtS = time.Since(start).Seconds()
			res.Samples = append(res.Samples, s)
			fmt.Fprintf(log, "%6.0fs  RSS %6.1f MiB  goroutines %4.0f  open files %4d  head series %6.0f  compactions %2.0f\n",
				s.AtS, float64(s.RSSBytes)/(1<<20), s.Goroutines, s.OpenFDs, s.HeadSeries, s.Compactions)
			select {
			case <-sampling.Done():
				return
			case <-tick.C:
			}
		}
	})
	sum, err := rf.execute(ctx, log)
	stop()
	wg.Wait()
	if err != nil {
		return res, err
	}
	if sampleErr != nil {
		return res, fmt.Errorf("sampling the collector: %w", sampleErr)
	}
	res.Summary = sum
	return res, nil
}

// sampleCollector reads b's process from /proc and its /metrics.
func sampleCollector(ctx context.Context, b *bantaySide) (soakSample, error) {
	p, err := procfs.NewProc(b.cmd.Process.Pid)
	if err != nil {
		return soakSample{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return soakSample{}, err
	}
	fds, err := p.FileDescriptorsLen()
	if err != nil {
		return soakSample{}, err
	}
	s := soakSample{RSSBytes: int64(st.ResidentMemory()), Threads: st.NumThreads, OpenFDs: fds}
	mf, err := scrape(ctx, "http://"+b.web+"/metrics", b.readerToken)
	if err != nil {
		return soakSample{}, err
	}
	for name, v := range map[string]*float64{
		"go_goroutines":                       &s.Goroutines,
		"go_memstats_heap_inuse_bytes":        &s.HeapInuseBytes,
		"prometheus_tsdb_head_series":         &s.HeadSeries,
		"prometheus_tsdb_head_chunks":         &s.HeadChunks,
		"prometheus_tsdb_blocks_loaded":       &s.Blocks,
		"prometheus_tsdb_compactions_total":   &s.Compactions,
		"bantay_store_appended_samples_total": &s.AppendedSamples,
	} {
		f, ok := mf[name]
		if !ok || len(f.GetMetric()) != 1 {
			return soakSample{}, fmt.Errorf("/metrics: no single %s", name)
		}
		m := f.GetMetric()[0]
		*v = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return s, nil
}

// scrape reads a Prometheus text exposition.
func scrape(ctx context.Context, url, token string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func printSamples(w io.Writer, samples []soakSample) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t s\tRSS MiB\theap MiB\tgoroutines\tthreads\topen files\thead series\thead chunks\tblocks\tcompactions\tappended/s\t")
	for i, s := range samples {
		rate := "-"
		if i > 0 {
			p := samples[i-1]
			rate = fmt.Sprintf("%.0f", (s.AppendedSamples-p.AppendedSamples)/(s.AtS-p.AtS))
		}
		fmt.Fprintf(tw, "%.0f\t%.1f\t%.1f\t%.0f\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", s.AtS, float64(s.RSSBytes)/(1<<20), s.HeapInuseBytes/(1<<20),
			s.Goroutines, s.Threads, s.OpenFDs, s.HeadSeries, s.HeadChunks, s.Blocks, s.Compactions, rate)
	}
	tw.Flush()
}

// printDrift says how RSS, goroutines and open files moved from the first
// sample after the first head compaction to the last: before it the head
// only grows, so that is where "flat" can first be judged.
func printDrift(w io.Writer, res soakResult) {
	fmt.Fprintf(w, "acked %d points (%.0f/s), refused %v", res.AckedPoints, res.AckedPerS, res.RefusedPoints)
	if q := res.Queryable; q != nil {
		fmt.Fprintf(w, ", queryable %d (missing %d)", q.StoredPoints, q.MissingPoints)
	}
	fmt.Fprintln(w)
	samples := res.Samples
	from := -1
	for i, s := range samples {
		if s.Compactions > 0 {
			from = i
			break
		}
	}
	if from < 0 || from == len(samples)-1 {
		fmt.Fprintf(w, "no head compaction before the last sample (block duration %v): run longer or shorten -block-duration\n",
			time.Duration(res.BlockDurationS*float64(time.Second)))
		return
	}
	a, z := samples[from], samples[len(samples)-1]
	fmt.Fprintf(w, "from the first compaction (%.0f s) to the end (%.0f s): RSS %.1f → %.1f MiB (%+.3f MiB/min), goroutines %.0f → %.0f, open files %d → %d, heap %.1f → %.1f MiB\n",
		a.AtS, z.AtS, float64(a.RSSBytes)/(1<<20), float64(z.RSSBytes)/(1<<20), float64(z.RSSBytes-a.RSSBytes)/(1<<20)/((z.AtS-a.AtS)/60),
		a.Goroutines, z.Goroutines, a.OpenFDs, z.OpenFDs, a.HeapInuseBytes/(1<<20), z.HeapInuseBytes/(1<<20))
}
