package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/prober"
)

const measureUsage = `usage: bantay-probe measure [flags] TARGET...

Runs one round of probes to each target now, without a collector, and prints
sent, received, loss and RTT statistics per target. Targets: a host for icmp,
host:port for tcp and udp (a Bantay reflector), a URL for http, the resolver's
host:port for dns (with --query-name).

Exit status: 0 when every target answered at least once, 1 otherwise, 2 for
bad usage.

flags:
`

// measure is `bantay-probe measure`: rounds taken by exactly the code the
// daemon uses (prober.TakeRound), printed for a person or as JSON lines.
func measure(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bantay-probe measure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, measureUsage)
		fs.PrintDefaults()
	}
	method := fs.String("method", config.MethodICMP, "probe method: "+strings.Join(config.Methods, ", "))
	count := fs.Int("count", 0, "probes per target (default 5 for icmp and udp, 1 for tcp, http, dns)")
	interval := fs.Duration("interval", time.Second, "time between the probes of a round")
	timeout := fs.Duration("timeout", 2*time.Second, "how long each probe waits for its answer")
	asJSON := fs.Bool("json", false, "print one JSON object per target per line")
	source := fs.String("source", "", "local source address of every probe (an uplink's bind_address)")
	probeID := fs.String("probe-id", "bantay-measure", "probe id written into udp echo packets")
	queryName := fs.String("query-name", "", "dns: the name to ask the resolver for")
	queryType := fs.String("query-type", config.DefaultQueryType, "dns: the record type to ask for")
	insecure := fs.Bool("insecure-skip-verify", false, "http: do not verify the server's certificate")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "bantay-probe measure: "+format+"\n", a...)
		return 2
	}
	if !slices.Contains(config.Methods, *method) {
		return usageErr("--method %q is not one of %s", *method, strings.Join(config.Methods, ", "))
	}
	if fs.NArg() == 0 {
		return usageErr("no target given (try --help)")
	}
	spec := prober.RoundSpec{Count: *count, Interval: *interval, Timeout: *timeout}
	if spec.Count == 0 {
		spec.Count = config.DefaultCount(*method)
	}
	switch {
	case spec.Count < 1 || spec.Count > prober.MaxCount:
		return usageErr("--count %d is not 1..%d", *count, prober.MaxCount)
	case spec.Interval <= 0:
		return usageErr("--interval %s must be positive", *interval)
	case spec.Timeout <= 0 || spec.Timeout > config.MaxTimeout:
		return usageErr("--timeout %s is not between 0 and %s", *timeout, config.MaxTimeout)
	}
	opts := prober.Options{ProbeID: *probeID}
	if *source != "" {
		a, err := netip.ParseAddr(*source)
		if err != nil {
			return usageErr("--source %q is not an IP address", *source)
		}
		opts.BindAddress = a
	}
	if *method == config.MethodDNS {
		if field, err := config.CheckQuery(*queryName, queryType); err != nil {
			return usageErr("--%s: %v", strings.ReplaceAll(field, "_", "-"), err)
		}
	} else if *queryName != "" {
		return usageErr("--query-name applies only to --method dns")
	}
	targets := fs.Args()
	for _, t := range targets {
		if err := config.CheckAddress(*method, t); err != nil {
			return usageErr("target %s", err)
		}
	}

	probers := make([]prober.Prober, len(targets))
	for i, addr := range targets {
		p, err := prober.New(config.Target{
			Name: addr, Method: *method, Address: addr,
			QueryName: *queryName, QueryType: *queryType, InsecureSkipVerify: *insecure,
		}, opts)
		if err != nil {
			return usageErr("target %q: %v", addr, err)
		}
		if ic, ok := p.(*prober.ICMP); ok {
			reportICMP(stderr, ic, i == 0)
		}
		probers[i] = p
	}
	rounds := make([]*prober.Round, len(targets))
	var wg sync.WaitGroup
	for i, p := range probers {
		wg.Go(func() {
			// The spec was checked above, so TakeRound cannot refuse it.
			rounds[i], _ = prober.TakeRound(ctx, p, spec)
		})
	}
	wg.Wait()

	if *asJSON {
		enc := json.NewEncoder(stdout)
		for i, r := range rounds {
			if err := enc.Encode(newReport(targets[i], *method, r)); err != nil {
				fmt.Fprintln(stderr, "bantay-probe measure:", err)
				return 1
			}
		}
	} else {
		printText(stdout, targets, rounds)
	}
	code := 0
	for _, r := range rounds {
		if r.Received() == 0 {
			code = 1
		}
	}
	if ctx.Err() != nil {
		code = 1
	}
	return code
}

// reportICMP says, once, which socket icmp uses and where RTTs come from,
// and for every target that cannot be probed, why.
func reportICMP(w io.Writer, p *prober.ICMP, first bool) {
	if err := p.StartError(); err != nil {
		fmt.Fprintln(w, "bantay-probe measure:", err)
		return
	}
	if first {
		clock := "monotonic clock"
		switch {
		case p.KernelSendTimestamps():
			clock = "kernel send and receive timestamps"
		case p.KernelTimestamps():
			clock = "kernel receive timestamps"
		}
		fmt.Fprintf(w, "bantay-probe measure: icmp over a %s, RTTs from %s\n", p.Mode(), clock)
	}
}

// report is one target's JSON line. RTT fields are null when nothing was
// answered (and jitter with fewer than two answers): no RTT is not 0 ms.
type report struct {
	Target     string            `json:"target"`
	Method     string            `json:"method"`
	Sent       int               `json:"sent"`
	Received   int               `json:"received"`
	LossRatio  float64           `json:"loss_ratio"`
	RTTMillis  *rttMillis        `json:"rtt_ms"`
	JitterMs   *float64          `json:"jitter_ms"`
	Duplicates int               `json:"duplicates"`
	Reordered  int               `json:"reordered"`
	Failures   map[string]int    `json:"failures,omitempty"`
	Errors     map[string]string `json:"errors,omitempty"`
	// http only: the last answer's status, the mean of each phase, the
	// earliest certificate expiry seen (RFC 3339).
	StatusCode   int                `json:"status_code,omitempty"`
	PhasesMillis map[string]float64 `json:"phases_ms,omitempty"`
	CertNotAfter string             `json:"cert_not_after,omitempty"`
}

type rttMillis struct {
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ms is d in milliseconds to 0.001 ms, the resolution measure promises.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func newReport(target, method string, r *prober.Round) report {
	out := report{
		Target: target, Method: method, Sent: r.Sent, Received: r.Received(),
		LossRatio:  math.Round(r.LossRatio()*1e6) / 1e6,
		Duplicates: r.Duplicates, Reordered: r.Reordered,
	}
	if s, ok := r.Stats(); ok {
		out.RTTMillis = &rttMillis{Min: ms(s.Min), P50: ms(s.P50), P90: ms(s.P90), P99: ms(s.P99), Max: ms(s.Max), Mean: ms(s.Mean)}
		if s.HasJitter {
			j := ms(s.Jitter)
			out.JitterMs = &j
		}
	}
	for _, ph := range r.Phases() {
		if out.PhasesMillis == nil {
			out.PhasesMillis = map[string]float64{}
		}
		out.PhasesMillis[ph.Name] = ms(ph.Duration)
	}
	if status, expiry := httpAnswer(r); status != 0 {
		out.StatusCode = status
		if !expiry.IsZero() {
			out.CertNotAfter = expiry.UTC().Format(time.RFC3339)
		}
	}
	for reason, n := range r.Failures {
		if out.Failures == nil {
			out.Failures, out.Errors = map[string]int{}, map[string]string{}
		}
		out.Failures[string(reason)] = n
		out.Errors[string(reason)] = r.Errors[reason].Error()
	}
	return out
}

// httpAnswer is the last answer's status code and the earliest
// certificate expiry of the round's answers; 0 and zero for other methods.
func httpAnswer(r *prober.Round) (status int, certNotAfter time.Time) {
	for _, res := range r.Results {
		status = res.StatusCode
		if !res.CertNotAfter.IsZero() && (certNotAfter.IsZero() || res.CertNotAfter.Before(certNotAfter)) {
			certNotAfter = res.CertNotAfter
		}
	}
	return status, certNotAfter
}

// printText prints a table in the manner of `mtr --report`, then each
// target's failures, duplicates and reordering, if any.
func printText(w io.Writer, targets []string, rounds []*prober.Round) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tsent\trecv\tloss\tmin\tp50\tp90\tp99\tmax\tmean\tjitter\t")
	for i, r := range rounds {
		cells := []string{"-", "-", "-", "-", "-", "-", "-"}
		if s, ok := r.Stats(); ok {
			for k, d := range []time.Duration{s.Min, s.P50, s.P90, s.P99, s.Max, s.Mean} {
				cells[k] = fmt.Sprintf("%.3f", ms(d))
			}
			if s.HasJitter {
				cells[6] = fmt.Sprintf("%.3f", ms(s.Jitter))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%s\t\n", targets[i], r.Sent, r.Received(), 100*r.LossRatio(), strings.Join(cells, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w, "(RTTs in ms; jitter is the mean difference between consecutive RTTs)")
	for i, r := range rounds {
		var notes []string
		if status, expiry := httpAnswer(r); status != 0 {
			var phases []string
			for _, ph := range r.Phases() {
				phases = append(phases, fmt.Sprintf("%s %.3f", ph.Name, ms(ph.Duration)))
			}
			note := fmt.Sprintf("status %d, mean ms: %s", status, strings.Join(phases, ", "))
			if !expiry.IsZero() {
				note += ", certificate valid until " + expiry.UTC().Format(time.RFC3339)
			}
			notes = append(notes, note)
		}
		reasons := make([]prober.Reason, 0, len(r.Failures))
		for reason := range r.Failures {
			reasons = append(reasons, reason)
		}
		slices.Sort(reasons)
		for _, reason := range reasons {
			notes = append(notes, fmt.Sprintf("%d %s (%v)", r.Failures[reason], reason, r.Errors[reason]))
		}
		if r.Duplicates > 0 {
			notes = append(notes, fmt.Sprintf("%d duplicate replies", r.Duplicates))
		}
		if r.Reordered > 0 {
			notes = append(notes, fmt.Sprintf("%d replies out of order", r.Reordered))
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "%s: %s\n", targets[i], strings.Join(notes, "; "))
		}
	}
}
