package otlpload

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// pointMetrics are the store's names of the points a probe sends
// (Prometheus's OTLP translation, docs/metric-model.md): one _count sample
// per histogram point. One query each: count_over_time drops the name, and
// a histogram's _count and its attempts counter have the same labels.
var pointMetrics = []string{"network_latency_milliseconds_count", "bantay_probe_attempts_total", "bantay_probe_failures_total"}

// NewAPI is a Prometheus API client for base (http://host:port), sending
// token as a bearer token when not empty (a reader credential of the
// collector's access policy).
func NewAPI(base, token string) (promv1.API, error) {
	rt := http.DefaultTransport
	if token != "" {
		rt = config.NewAuthorizationCredentialsRoundTripper("Bearer", config.NewInlineSecret(token), rt)
	}
	c, err := api.NewClient(api.Config{Address: base, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("query url %q: %w", base, err)
	}
	return promv1.NewAPI(c), nil
}

// Stored is the comparison of what a run acknowledged with what the store holds.
type Stored struct {
	// Points is what the store holds with sample times in the run's
	// acknowledged range; Missing and Surplus sum, per probe, the
	// acknowledged points not stored and the stored points not acknowledged
	// (a refused export the store kept anyway).
	Points, Missing, Surplus int64
	// Share is stored ÷ acknowledged, counting only acknowledged points (1 when nothing was acknowledged).
	Share float64
}

// CountStored counts, per probe, the points the store holds with sample
// times from r.FirstSample to r.LastSample, and compares them with what r
// acknowledged. Every export of a run has its own sample time, so the
// range holds exactly the run's points (a previous run's end before it).
func CountStored(ctx context.Context, q promv1.API, r Report) (Stored, error) {
	st := Stored{Share: 1}
	if r.Acked == 0 {
		return st, nil
	}
	stored, err := StoredByProbe(ctx, q, r.FirstSample, r.LastSample)
	if err != nil {
		return st, err
	}
	for probe, acked := range r.AckedByProbe {
		got := stored[probe]
		delete(stored, probe)
		st.Points += got
		if got < acked {
			st.Missing += acked - got
		} else {
			st.Surplus += got - acked
		}
	}
	for _, got := range stored {
		st.Points += got
		st.Surplus += got
	}
	st.Share = float64(r.Acked-st.Missing) / float64(r.Acked)
	return st, nil
}

// StoredByProbe counts, per probe (instance), the points the store holds
// with sample times from from to to, both included.
func StoredByProbe(ctx context.Context, q promv1.API, from, to time.Time) (map[string]int64, error) {
	window := to.Sub(from) + time.Millisecond
	stored := map[string]int64{}
	for _, name := range pointMetrics {
		query := fmt.Sprintf(`sum by (instance) (count_over_time(%s{instance=~"lg-.*"}[%dms]))`, name, window.Milliseconds())
		v, _, _, err := q.Query(ctx, query, to)
		if err != nil {
			return nil, fmt.Errorf("count stored %s: %w", name, err)
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("count stored %s: want a vector, got %s", name, v.Type())
		}
		for _, s := range vec {
			stored[string(s.Metric["instance"])] += int64(s.Value)
		}
	}
	return stored, nil
}

// Lags are duration samples: how long after its sample time a point was
// seen (freshness), or how long an answer took.
type Lags struct {
	mu     sync.Mutex
	lags   []time.Duration
	missed int
}

// maxLags bounds the samples kept.
const maxLags = 100_000

// Add records one sample (beyond maxLags, none).
func (l *Lags) Add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lags) < maxLags {
		l.lags = append(l.lags, d)
	}
}

// LagSummary summarises Lags in seconds.
type LagSummary struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_s"`
	P99     float64 `json:"p99_s"`
	Max     float64 `json:"max_s"`
	// NotSeen counts samples given up on (not visible within the wait).
	NotSeen int `json:"not_seen,omitempty"`
}

// Summary returns nearest-rank percentiles of the samples so far.
func (l *Lags) Summary() LagSummary {
	l.mu.Lock()
	lags := slices.Clone(l.lags)
	missed := l.missed
	l.mu.Unlock()
	s := LagSummary{Samples: len(lags), NotSeen: missed}
	if len(lags) == 0 {
		return s
	}
	slices.Sort(lags)
	rank := func(p float64) float64 { return lags[int(p*float64(len(lags)-1)+0.5)].Seconds() }
	s.P50, s.P99, s.Max = rank(0.5), rank(0.99), lags[len(lags)-1].Seconds()
	return s
}

// APIFreshness measures sample time → visible in the Prometheus API: it
// takes the most recently acknowledged export, polls the API until that
// export's first latency series shows its sample time, records the lag and
// takes the next acknowledged after at least SampleEvery. One poll runs at a
// time and samples are spaced, so the measurement's cost on the store is
// bounded whatever the load: polling back to back, it was the largest single
// cost of a collector at 10k points/s (16 % of its CPU, most of it gzip
// writers for hundreds of answers a second), which is no ingest cost a NOC
// would pay.
type APIFreshness struct {
	API promv1.API
	// CarrierLabel is the label holding the uplink's carrier: "carrier"
	// (citytag's) on Bantay, "bantay_uplink_carrier" (the resource
	// attribute) on the upstream peer.
	CarrierLabel string
	// SampleEvery is the least time between two sampled exports.
	SampleEvery time.Duration
	Lags
	// latest holds the newest acknowledged export not yet polled for.
	latest chan acked
}

type acked struct {
	s      *Stream
	sample time.Time
}

// DefaultSampleEvery spaces sampled exports: ten a second, 200 lags in a
// 20 s step, enough for a p99.
const DefaultSampleEvery = 100 * time.Millisecond

// NewAPIFreshness polls api; carrierLabel is as in CarrierLabel.
func NewAPIFreshness(api promv1.API, carrierLabel string) *APIFreshness {
	return &APIFreshness{API: api, CarrierLabel: carrierLabel, SampleEvery: DefaultSampleEvery, latest: make(chan acked, 1)}
}

// Offer is a Load's OnAck: it hands over the newest acknowledged export without blocking.
func (f *APIFreshness) Offer(s *Stream, sample time.Time) {
	select {
	case f.latest <- acked{s, sample}:
	default:
	}
}

// Run polls until ctx ends.
func (f *APIFreshness) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-f.latest:
			next := time.Now().Add(f.SampleEvery)
			f.await(ctx, a)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(next)):
			}
			// Drop what was acknowledged meanwhile: the next sample is
			// the next export acknowledged from now on.
			select {
			case <-f.latest:
			default:
			}
		}
	}
}

// waitVisible bounds the wait for one sample.
const waitVisible = 10 * time.Second

func (f *APIFreshness) await(ctx context.Context, a acked) {
	query := fmt.Sprintf(`timestamp(network_latency_milliseconds_count{instance=%q,target=%q,%s=%q})`,
		a.s.Probe.ID, a.s.Probe.Targets[0].Name, f.CarrierLabel, a.s.Uplink.Carrier)
	want := model.TimeFromUnixNano(a.sample.UnixNano())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, _, _, err := f.API.Query(ctx, query, time.Now()); err == nil {
			if vec, ok := v.(model.Vector); ok && len(vec) == 1 && model.Time(float64(vec[0].Value)*1000+0.5) >= want {
				f.Add(time.Since(a.sample))
				return
			}
		}
		if time.Since(a.sample) > waitVisible {
			f.mu.Lock()
			f.missed++
			f.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
