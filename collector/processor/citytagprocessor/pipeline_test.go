package citytagprocessor

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/processor/processortest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/exporters/tsdbexporter"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/store"
)

// storeOwner is the bantay extension as the tsdb exporter finds it.

// pipeline is the collector's metrics path in one process: the real OTLP
// receiver (gRPC and HTTP) → citytag → the tsdb exporter → the store, on a
// data directory that survives restart().
type pipeline struct {
	t      *testing.T
	dir    string
	store  *store.Store
	exp    exporter.Metrics
	grpc   pmetricotlp.GRPCClient
	http   string
	tagger *cityTagger
}

func newPipeline(t *testing.T) *pipeline {
	p := &pipeline{t: t, dir: t.TempDir()}
	p.openStore()
	next, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error { return p.exp.ConsumeMetrics(ctx, md) })
	require.NoError(t, err)
	proc, tagger, err := newProcessor(context.Background(), processortest.NewNopSettings(metadata.Type), testConfig(), next)
	require.NoError(t, err)
	require.NoError(t, proc.Start(context.Background(), hosttest.With(&hosttest.Provider{})))
	t.Cleanup(func() { require.NoError(t, proc.Shutdown(context.Background())) })
	p.tagger = tagger // the exporter after citytag is replaced on restart: next reads p.exp
	p.grpc, p.http = otlpReceiver(t, proc)
	t.Cleanup(p.closeStore)
	return p
}

func (p *pipeline) openStore() {
	s, err := store.Open(store.DefaultConfig(p.dir), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(p.t, err)
	exp, err := tsdbexporter.NewFactory().CreateMetrics(context.Background(),
		exportertest.NewNopSettings(tsdbexporter.NewFactory().Type()), tsdbexporter.NewFactory().CreateDefaultConfig())
	require.NoError(p.t, err)
	require.NoError(p.t, exp.Start(context.Background(), hosttest.With(&hosttest.Provider{TSDB: s})))
	p.store, p.exp = s, exp
}

func (p *pipeline) closeStore() {
	if p.store == nil {
		return
	}
	require.NoError(p.t, p.exp.Shutdown(context.Background()))
	require.NoError(p.t, p.store.Close())
	p.store = nil
}

// restart closes the store and opens it again on the same directory (WAL replay).
func (p *pipeline) restart() {
	p.closeStore()
	p.openStore()
}

// sendGRPC exports md over OTLP/gRPC and returns the status the client sees.
func (p *pipeline) sendGRPC(md pmetric.Metrics) *status.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.grpc.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.WaitForReady(true))
	return status.Convert(err)
}

func (p *pipeline) sendHTTP(md pmetric.Metrics) otlpload.Answer {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := otlpload.PostHTTP(ctx, http.DefaultClient, p.http, md)
	require.NoError(p.t, err)
	return a
}

// stored is how many latency count samples of probe the store holds.
func (p *pipeline) stored(probe string) int {
	q, err := p.store.DB().Querier(math.MinInt64, math.MaxInt64)
	require.NoError(p.t, err)
	defer q.Close()
	set := q.Select(context.Background(), false, nil,
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "network_latency_milliseconds_count"),
		labels.MustNewMatcher(labels.MatchEqual, labelProbe, probe))
	n := 0
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	require.NoError(p.t, set.Err())
	return n
}

var dvoSmart = uplinkRes{"dvo-01", "Davao", "Smart", "5g"}

// TestFastProbeClockCannotStopOtherProbes: a registered probe whose clock is
// two hours fast, and one sending from the year 2200, are refused with
// timestamp_in_future, and another probe's current data keeps being
// stored, before and after the store restarts. Without the bound, the
// first point moved the TSDB head's max time forward and every later
// current point of every probe was refused permanently as "too old sample",
// also after a restart (the head's time is in the WAL).
func TestFastProbeClockCannotStopOtherProbes(t *testing.T) {
	p := newPipeline(t)
	now := time.Now()
	current := func(n int) pmetric.Metrics { // dvo-01's n-th send, 15 s apart, the newest now
		md := pmetric.NewMetrics()
		atTimes(md, dvoSmart, now.Add(time.Duration(n-10)*15*time.Second))
		return md
	}
	require.Equal(t, codes.OK, p.sendGRPC(current(1)).Code())

	fast := pmetric.NewMetrics()
	atTimes(fast, mnlGlobe, now.Add(2*time.Hour))
	st := p.sendGRPC(fast)
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Contains(t, st.Message(), "citytag rejected 1 of 1 points; first: timestamp_in_future (probe mnl-01")
	assert.Equal(t, codes.OK, p.sendGRPC(current(2)).Code(), "%v", p.sendGRPC(current(2)).Message())

	y2200 := pmetric.NewMetrics()
	atTimes(y2200, mnlGlobe, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	a := p.sendHTTP(y2200)
	assert.Equal(t, http.StatusBadRequest, a.Status)
	assert.Contains(t, a.Message, "first: timestamp_in_future (probe mnl-01")
	assert.Equal(t, otlpload.Answer{Status: http.StatusOK}, p.sendHTTP(current(3)))

	p.restart()
	assert.LessOrEqual(t, p.store.DB().HeadMaxTime(), time.Now().Add(5*time.Minute).UnixMilli(), "the head's time after WAL replay")
	assert.Equal(t, codes.OK, p.sendGRPC(current(4)).Code())
	assert.Equal(t, 4, p.stored("dvo-01"))
	assert.Zero(t, p.stored("mnl-01"))
}

// TestStoreRefusalReachesTheSenderOnce: a sample the TSDB refuses (here a
// conflicting duplicate: same series and time, another value) is answered
// with the store's message alone, over gRPC and HTTP; it used to arrive as
// "Permanent error: rpc error: code = InvalidArgument desc = stored 0 …".
func TestStoreRefusalReachesTheSenderOnce(t *testing.T) {
	p := newPipeline(t)
	at := time.Now()
	send := func(sum float64) pmetric.Metrics {
		md := pmetric.NewMetrics()
		atTimes(md, dvoSmart, at)
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Histogram().DataPoints().At(0).SetSum(sum)
		return md
	}
	require.Equal(t, codes.OK, p.sendGRPC(send(70)).Code())
	const want = `stored 5 samples; not stored: [1 samples refused by the TSDB, first: series {__name__="network_latency_milliseconds_sum"`
	st := p.sendGRPC(send(71))
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.True(t, strings.HasPrefix(st.Message(), want), "%s", st.Message())
	a := p.sendHTTP(send(72))
	assert.Equal(t, http.StatusBadRequest, a.Status)
	assert.True(t, strings.HasPrefix(a.Message, want), "%s", a.Message)
}
