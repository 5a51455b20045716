package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
)

// runFlags is one load run.
type runFlags struct {
	fleetFlags
	endpoint, protocol string
	interval           time.Duration
	rate               float64
	flatOut            bool
	concurrency        int
	duration, timeout  time.Duration
	tokenDir, tokens   string
	peer               bool
	queryURL, token    string
	wsURL              string
	queryableAfter     time.Duration
	jsonPath           string
	progress           bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.fleetFlags.register(fs)
	fs.StringVar(&f.endpoint, "endpoint", "", "collector OTLP endpoint: host:port for grpc (default 127.0.0.1:4317), base URL for http (default http://127.0.0.1:4318)")
	fs.StringVar(&f.protocol, "protocol", otlpload.GRPC, "grpc or http (OTLP protobuf)")
	fs.DurationVar(&f.interval, "interval", 15*time.Second, "each probe uplink's export interval (the probes' default cadence)")
	fs.Float64Var(&f.rate, "rate", 0, "offered points per second over the fleet (sets the interval to series ÷ rate)")
	fs.BoolVar(&f.flatOut, "flat-out", false, "send each export as soon as the previous one of its uplink is acknowledged")
	fs.IntVar(&f.concurrency, "concurrency", 0, "exports in flight at most (0: one per probe uplink, as a real fleet)")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, fmt.Sprintf("how long to send (at most %v)", otlpload.MaxDuration))
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout of each export")
	fs.StringVar(&f.tokenDir, "token-dir", "", "directory of <probe id>.token files (bantay-loadgen setup writes them)")
	fs.StringVar(&f.tokens, "tokens", "", "YAML file of probe id → bearer token")
	fs.BoolVar(&f.peer, "peer", false, "upstream peer mode: no tokens, and the carrier is the resource attribute's label")
	fs.StringVar(&f.queryURL, "query-url", "", "Prometheus API base URL (http://127.0.0.1:8080) to check what was stored and how fresh")
	fs.StringVar(&f.token, "query-token", "", "reader bearer token for -query-url and -ws-url (docs/security.md)")
	fs.StringVar(&f.wsURL, "ws-url", "", "heatmap websocket (ws://127.0.0.1:8080/ws) to measure sample → frame freshness")
	fs.DurationVar(&f.queryableAfter, "queryable-after", 2*time.Second, "how long after the last acknowledgement the stored points are counted")
	fs.StringVar(&f.jsonPath, "json", "", "write the JSON summary to this file (- for stdout)")
	fs.BoolVar(&f.progress, "progress", true, "print a live progress line to stderr every second")
}

// validate names the first bad flag.
func (f *runFlags) validate() error {
	switch {
	case f.protocol != otlpload.GRPC && f.protocol != otlpload.HTTP:
		return fmt.Errorf("-protocol %q: want grpc or http", f.protocol)
	case f.rate < 0:
		return fmt.Errorf("-rate %v: want > 0 points/s", f.rate)
	case f.flatOut && f.rate > 0:
		return errors.New("-rate and -flat-out: give one")
	case f.rate == 0 && !f.flatOut && f.interval <= 0:
		return fmt.Errorf("-interval %v: want > 0", f.interval)
	case f.concurrency < 0:
		return fmt.Errorf("-concurrency %d: want ≥ 0", f.concurrency)
	case f.duration <= 0 || f.duration > otlpload.MaxDuration:
		return fmt.Errorf("-duration %v: want > 0 and at most %v", f.duration, otlpload.MaxDuration)
	case f.timeout <= 0:
		return fmt.Errorf("-timeout %v: want > 0", f.timeout)
	case f.peer && (f.tokenDir != "" || f.tokens != ""):
		return errors.New("-peer sends without identity: drop -token-dir and -tokens")
	case f.tokenDir != "" && f.tokens != "":
		return errors.New("-token-dir and -tokens: give one")
	case !f.peer && f.tokenDir == "" && f.tokens == "":
		return errors.New("probes need tokens: give -token-dir or -tokens (bantay-loadgen setup), or -peer")
	case f.wsURL != "" && f.peer:
		return errors.New("-ws-url: the upstream peer has no heatmap websocket")
	case f.queryableAfter < 0:
		return fmt.Errorf("-queryable-after %v: want ≥ 0", f.queryableAfter)
	}
	return nil
}

// exportInterval is each stream's interval: 0 flat out.
func (f *runFlags) exportInterval() time.Duration {
	switch {
	case f.flatOut:
		return 0
	case f.rate > 0:
		return time.Duration(float64(f.series()) / f.rate * float64(time.Second))
	}
	return f.interval
}

func (f *runFlags) defaultEndpoint() string {
	switch {
	case f.endpoint != "":
		return f.endpoint
	case f.protocol == otlpload.HTTP:
		return "http://127.0.0.1:4318"
	}
	return "127.0.0.1:4317"
}

// Summary is the JSON summary of a run.
type Summary struct {
	Protocol string `json:"protocol"`
	Endpoint string `json:"endpoint"`
	Peer     bool   `json:"peer"`
	Probes   int    `json:"probes"`
	Targets  int    `json:"targets"`
	Uplinks  int    `json:"uplinks"`
	// Series counts OTLP point streams (probes × uplinks × targets × 8).
	Series int `json:"series"`
	// IntervalS is each uplink's export interval (0: flat out).
	IntervalS float64 `json:"interval_s"`
	ElapsedS  float64 `json:"elapsed_s"`

	OfferedPoints int64 `json:"offered_points"`
	SentPoints    int64 `json:"sent_points"`
	AckedPoints   int64 `json:"acked_points"`
	// SkippedPoints were offered while their uplink's previous export was unanswered.
	SkippedPoints   int64                `json:"skipped_points"`
	RefusedPoints   map[string]int64     `json:"refused_points"`
	RefusalExamples map[string]string    `json:"refusal_examples,omitempty"`
	OfferedPerS     float64              `json:"offered_points_per_s"`
	AckedPerS       float64              `json:"acked_points_per_s"`
	Queryable       *QueryableSummary    `json:"queryable,omitempty"`
	APIFreshness    *otlpload.LagSummary `json:"api_freshness,omitempty"`
	WSFreshness     *otlpload.LagSummary `json:"ws_freshness,omitempty"`
}

// QueryableSummary compares acknowledged with stored points.
type QueryableSummary struct {
	// AfterS is how long after the last acknowledgement they were counted.
	AfterS        float64 `json:"after_s"`
	StoredPoints  int64   `json:"stored_points"`
	MissingPoints int64   `json:"missing_points"`
	SurplusPoints int64   `json:"surplus_points"`
	Share         float64 `json:"share"`
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected arguments %q", fs.Args())
	}
	sum, err := f.execute(ctx, stderr)
	if err != nil {
		return err
	}
	return writeSummary(f.jsonPath, sum, stdout)
}

func writeSummary(path string, sum Summary, stdout io.Writer) error {
	if path != "" && path != "-" {
		return writeJSONFile(path, sum)
	}
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(data, '\n'))
	return err
}

// writeJSONFile writes v to path as indented JSON, the form every
// command's -json file has.
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// execute runs the load with its measurements and summarises it.
func (f *runFlags) execute(ctx context.Context, progress io.Writer) (Summary, error) {
	if err := f.validate(); err != nil {
		return Summary{}, err
	}
	fleet, err := f.fleet()
	if err != nil {
		return Summary{}, err
	}
	if f.peer {
		for i := range fleet {
			fleet[i].Token = ""
		}
	} else if err := loadTokens(fleet, f.tokenDir, f.tokens); err != nil {
		return Summary{}, err
	}
	endpoint := f.defaultEndpoint()
	sender, err := otlpload.NewSender(f.protocol, endpoint)
	if err != nil {
		return Summary{}, fmt.Errorf("-endpoint: %w", err)
	}
	defer sender.Close()
	streams := otlpload.Streams(fleet, time.Now())
	concurrency := f.concurrency
	if concurrency == 0 {
		// Each probe uplink's exporter has at most one export in flight;
		// a smaller cap would make the tool, not the collector, the
		// bottleneck.
		concurrency = len(streams)
	}
	load := &otlpload.Load{Streams: streams, Sender: sender, Interval: f.exportInterval(),
		Concurrency: concurrency, Duration: f.duration, Timeout: f.timeout}

	measure, stopMeasuring := context.WithCancel(ctx)
	defer stopMeasuring()
	var wg sync.WaitGroup
	var apiFresh *otlpload.APIFreshness
	if f.queryURL != "" {
		api, err := otlpload.NewAPI(f.queryURL, f.token)
		if err != nil {
			return Summary{}, fmt.Errorf("-query-url: %w", err)
		}
		label := "carrier"
		if f.peer {
			label = "bantay_uplink_carrier"
		}
		apiFresh = otlpload.NewAPIFreshness(api, label)
		load.OnAck = apiFresh.Offer
		wg.Go(func() { apiFresh.Run(measure) })
	}
	var wsFresh *otlpload.WSFreshness
	if f.wsURL != "" {
		wsFresh = &otlpload.WSFreshness{}
		conn, err := wsFresh.Dial(ctx, f.wsURL, f.token)
		if err != nil {
			return Summary{}, fmt.Errorf("-ws-url: %w", err)
		}
		wg.Go(func() {
			if err := wsFresh.Read(measure, conn); err != nil {
				fmt.Fprintln(progress, "bantay-loadgen:", err)
			}
		})
	}
	// The progress line stops with the load, not with the measurements after it.
	sending, stopProgress := context.WithCancel(measure)
	if f.progress {
		wg.Go(func() { printProgress(sending, load, progress) })
	}
	rep, err := load.Run(ctx)
	stopProgress()
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Protocol: f.protocol, Endpoint: endpoint, Peer: f.peer, Probes: f.probes, Targets: f.targets, Uplinks: f.uplinks,
		Series: f.series(), IntervalS: load.Interval.Seconds(), ElapsedS: rep.Elapsed.Seconds(),
		OfferedPoints: rep.Offered, SentPoints: rep.Sent, AckedPoints: rep.Acked, SkippedPoints: rep.Skipped,
		RefusedPoints: rep.Refused, RefusalExamples: rep.Examples,
		OfferedPerS: float64(rep.Offered) / rep.Elapsed.Seconds(), AckedPerS: float64(rep.Acked) / rep.Elapsed.Seconds()}
	if apiFresh != nil {
		// Freshness polls and the websocket run on until the count, so the
		// last exports are measured too.
		select {
		case <-ctx.Done():
		case <-time.After(f.queryableAfter):
		}
		st, err := otlpload.CountStored(ctx, apiFresh.API, rep)
		if err != nil {
			return Summary{}, err
		}
		sum.Queryable = &QueryableSummary{AfterS: f.queryableAfter.Seconds(), StoredPoints: st.Points, MissingPoints: st.Missing, SurplusPoints: st.Surplus, Share: st.Share}
	}
	stopMeasuring()
	wg.Wait()
	if apiFresh != nil {
		s := apiFresh.Summary()
		sum.APIFreshness = &s
	}
	if wsFresh != nil {
		s := wsFresh.Summary()
		sum.WSFreshness = &s
	}
	return sum, nil
}

// printProgress writes one line a second: the rates of the last second and the totals.
func printProgress(ctx context.Context, l *otlpload.Load, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	var prev otlpload.Counts
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(w)
			return
		case <-tick.C:
		}
		c := l.Counts()
		fmt.Fprintf(w, "\r%4.0fs  offered %8d/s  acked %8d/s  not acked %8d  skipped %8d  acked total %10d ",
			time.Since(start).Seconds(), c.Offered-prev.Offered, c.Acked-prev.Acked, c.Sent-c.Acked, c.Skipped, c.Acked)
		prev = c
	}
}
