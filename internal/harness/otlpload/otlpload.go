// Package otlpload generates probe-shaped OTLP load against a collector and
// records exactly which data it acknowledged, so tests and the load tool can
// check "acknowledged means stored" and measure ingest throughput. Every run
// is bounded in request count and in time.
package otlpload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Options bounds and shapes a run.
type Options struct {
	// Endpoint is the collector's OTLP/gRPC host:port.
	Endpoint string
	// Probe is the registered probe id the load claims to be, with one of its uplinks.
	Probe, City, Carrier, NetworkType string
	// DstCity is the destination every point is tagged with.
	DstCity string
	// Workers send concurrently, each waiting for its answer before the next request.
	Workers int
	// PointsPerRequest is the number of histogram points (distinct series) per request.
	PointsPerRequest int
	// MaxRequests and Duration bound the run; whichever comes first ends it.
	MaxRequests int
	Duration    time.Duration
	// Timeout bounds each request.
	Timeout time.Duration
	// Pause is how long each worker waits after an answer before its next
	// request (0: none), so that a load running through a whole fault test
	// stays light and its head series few.
	Pause time.Duration
	// OnAnswer, if set, is told of every answer: when its request was sent,
	// how long the answer took, and the error (nil: acknowledged). The
	// workers call it concurrently.
	OnAnswer func(sent time.Time, took time.Duration, err error)
}

// Result is what a run sent and what the collector said.
type Result struct {
	// Acked lists the target label of every point whose request succeeded.
	Acked []string
	// Refused counts answers by gRPC code (RESOURCE_EXHAUSTED, UNAVAILABLE, …).
	Refused map[codes.Code]int
	// Requests is the number of requests sent.
	Requests int
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
}

// AckedPointsPerSecond is the acknowledged ingest rate.
func (r Result) AckedPointsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Acked)) / r.Elapsed.Seconds()
}

// Run sends load until MaxRequests, Duration or ctx ends it. A worker whose
// request fails with a connection error stops (the collector is gone);
// refusals and timeouts are counted and the worker backs off briefly and
// goes on, as a probe would.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Workers <= 0 || o.PointsPerRequest <= 0 || o.MaxRequests <= 0 || o.Duration <= 0 {
		return Result{}, errors.New("otlpload: workers, points per request, max requests and duration must be positive")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	conn, err := grpc.NewClient(o.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Result{}, fmt.Errorf("otlpload: dial %s: %w", o.Endpoint, err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)

	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var (
		mu      sync.Mutex
		res     = Result{Refused: map[codes.Code]int{}}
		budget  atomic.Int64
		wg      sync.WaitGroup
		started = time.Now()
	)
	budget.Store(int64(o.MaxRequests))
	for w := range o.Workers {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil && budget.Add(-1) >= 0; seq++ {
				targets := make([]string, o.PointsPerRequest)
				for i := range targets {
					targets[i] = fmt.Sprintf("load-w%d-r%d-p%d", w, seq, i)
				}
				reqCtx, reqCancel := context.WithTimeout(ctx, o.Timeout)
				sent := time.Now()
				_, err := client.Export(reqCtx, pmetricotlp.NewExportRequestFromMetrics(o.Batch(targets, sent)))
				reqCancel()
				if o.OnAnswer != nil {
					o.OnAnswer(sent, time.Since(sent), err)
				}
				mu.Lock()
				res.Requests++
				if err == nil {
					res.Acked = append(res.Acked, targets...)
				} else {
					res.Refused[status.Code(err)]++
				}
				mu.Unlock()
				if err != nil {
					switch status.Code(err) {
					case codes.ResourceExhausted, codes.Unavailable, codes.DeadlineExceeded:
						// A request that timed out (Timeout) is retried
						// by a probe too; the run's own end stops the loop.
						if isConnErr(err) {
							return
						}
						time.Sleep(10 * time.Millisecond)
					default:
						return
					}
				}
				if o.Pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(o.Pause):
					}
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(started)
	return res, nil
}

// isConnErr tells a dead collector from a refusal: both are UNAVAILABLE,
// but only a refusal comes with a message from the server.
func isConnErr(err error) bool {
	s, _ := status.FromError(err)
	return s.Code() == codes.Unavailable && containsAny(s.Message(), "connection refused", "error reading from server", "connection reset", "EOF", "transport is closing")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Batch is one probe uplink's cumulative latency histograms, one point per target.
func (o Options) Batch(targets []string, now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "bantay-probe")
	res.PutStr("service.instance.id", o.Probe)
	res.PutStr("bantay.probe.city", o.City)
	res.PutStr("bantay.uplink.carrier", o.Carrier)
	res.PutStr("bantay.uplink.network_type", o.NetworkType)
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("network.latency")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ts := pcommon.NewTimestampFromTime(now)
	start := pcommon.NewTimestampFromTime(now.Add(-time.Minute))
	for _, t := range targets {
		dp := h.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("dst_city", o.DstCity)
		dp.Attributes().PutStr("target", t)
		dp.Attributes().PutStr("method", "udp")
		dp.ExplicitBounds().FromRaw([]float64{10, 20, 50, 100})
		dp.BucketCounts().FromRaw([]uint64{1, 2, 1, 0, 0})
		dp.SetCount(4)
		dp.SetSum(60)
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
	}
	return md
}
