package citytagprocessor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// refusal checks that err is citytag's answer to a request it rejected
// points of — permanent, so the sender does not retry, with gRPC status
// InvalidArgument — and returns the status message.
func refusal(t testing.TB, err error) string {
	t.Helper()
	require.Error(t, err, "rejected points must not be acknowledged as stored")
	assert.True(t, consumererror.IsPermanent(err), "not permanent: %v", err)
	var gs interface{ GRPCStatus() *status.Status }
	require.True(t, errors.As(err, &gs), "no gRPC status: %v", err)
	assert.Equal(t, codes.InvalidArgument, gs.GRPCStatus().Code(), "%v", err)
	return gs.GRPCStatus().Message()
}

// mixedRequest is two uplinks of mnl-01, five points: three it can place,
// one naming a city the gazetteer lacks and one from an unregistered uplink.
func mixedRequest() pmetric.Metrics {
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Davao", "Cebu City", "Gotham")
	addResource(md, uplinkRes{"mnl-01", "Manila", "Smart", "5g"}, "Davao")
	addResource(md, uplinkRes{"bag-01", "Baguio", "Converge", "fiber"}, "Manila")
	return md
}

const mixedRefusal = `citytag rejected 2 of 5 points; first: unknown_dst_city (probe mnl-01, target "reflector-Gotham"): ` +
	`dst_city "Gotham" is not in the gazetteer; 2 reasons in all: unregistered_uplink 1, unknown_dst_city 1`

// TestMixedRequestStoresTheGoodAndTellsTheSender: what citytag can place
// goes on, and the call then fails permanently with InvalidArgument naming
// the count and the first rejection, so the sender knows its data was not
// all stored and does not retry it.
func TestMixedRequestStoresTheGoodAndTellsTheSender(t *testing.T) {
	h := newHarness(t, testConfig())
	assert.Equal(t, mixedRefusal, refusal(t, h.proc.ConsumeMetrics(context.Background(), mixedRequest())))
	require.Len(t, h.sink.AllMetrics(), 1)
	pts := pointAttrs(t, h.sink.AllMetrics()[0])
	require.Len(t, pts, 3)
	assert.Equal(t, []string{"Davao", "Cebu", "Manila"}, []string{pts[0]["dst_city"].(string), pts[1]["dst_city"].(string), pts[2]["dst_city"].(string)})
	assert.Equal(t, map[string]int64{reasonUnknownDstCity: 1, reasonUnregisteredLink: 1}, h.rejected(t))

	// The next request is judged on its own.
	md := pmetric.NewMetrics()
	addResource(md, uplinkRes{"dvo-01", "Davao", "Smart", "5g"}, "Manila")
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))
	assert.Len(t, h.sink.AllMetrics(), 2)
}

// TestDownstreamErrorsPassThroughUnchanged: when the store fails, that is
// the answer, with or without rejections: a retryable failure stays
// retryable (the sender re-sends, and citytag judges the points again).
func TestDownstreamErrorsPassThroughUnchanged(t *testing.T) {
	retryable := status.Error(codes.ResourceExhausted, "store overloaded")
	permanent := consumererror.NewPermanent(status.Error(codes.InvalidArgument, "stored 0 samples"))
	for _, downstream := range []error{retryable, permanent} {
		p, err := NewFactory().CreateMetrics(context.Background(), processortest.NewNopSettings(metadata.Type), testConfig(), consumertest.NewErr(downstream))
		require.NoError(t, err)
		require.NoError(t, p.Start(context.Background(), hosttest.With(&hosttest.Provider{})))
		assert.Equal(t, downstream, p.ConsumeMetrics(context.Background(), mixedRequest()), "with rejections")
		md := pmetric.NewMetrics()
		addResource(md, uplinkRes{"dvo-01", "Davao", "Smart", "5g"}, "Manila")
		assert.Equal(t, downstream, p.ConsumeMetrics(context.Background(), md), "without")
		require.NoError(t, p.Shutdown(context.Background()))
	}
	assert.False(t, consumererror.IsPermanent(retryable))
}

// contextKeeper records the context the next consumer is called with.
type contextKeeper struct {
	consumertest.MetricsSink
	ctx context.Context
}

func (k *contextKeeper) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	k.ctx = ctx
	return k.MetricsSink.ConsumeMetrics(ctx, md)
}

type ctxKey struct{}

// TestNextConsumerGetsTheCallersContext: the per-call accumulator stays
// inside citytag; what comes after it sees the caller's context (client
// info, deadline, values) and may keep it.
func TestNextConsumerGetsTheCallersContext(t *testing.T) {
	next := &contextKeeper{}
	p, err := NewFactory().CreateMetrics(context.Background(), processortest.NewNopSettings(metadata.Type), testConfig(), next)
	require.NoError(t, err)
	ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
	assert.Equal(t, mixedRefusal, refusal(t, p.ConsumeMetrics(ctx, mixedRequest())))
	assert.Equal(t, ctx, next.ctx)
	assert.Nil(t, next.ctx.Value(callCtxKey{}))
}

// TestNothingRejectedCostsNoAllocation: a clean request allocates exactly
// what processorhelper and processMetrics allocate without the refusal
// wrapper; the error is built only when something was rejected.
func TestNothingRejectedCostsNoAllocation(t *testing.T) {
	cfg := testConfig()
	set := processortest.NewNopSettings(metadata.Type)
	tagger, err := newCityTagger(set, cfg)
	require.NoError(t, err)
	bare, err := processorhelper.NewMetrics(context.Background(), set, cfg, consumertest.NewNop(), tagger.processMetrics,
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
	require.NoError(t, err)
	wrapped, err := NewFactory().CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)

	in := pmetric.NewMetrics()
	addResource(in, uplinkRes{"dvo-01", "Davao", "DITO", "4g"}, "Manila", "Baguio", "Davao")
	addResource(in, uplinkRes{"mnl-01", "Manila", "PLDT", "fiber"}, "Davao")
	allocs := func(p consumer.Metrics) float64 {
		return testing.AllocsPerRun(200, func() {
			md := pmetric.NewMetrics()
			in.CopyTo(md)
			if err := p.ConsumeMetrics(context.Background(), md); err != nil {
				t.Fatal(err)
			}
		})
	}
	base, got := allocs(bare), allocs(wrapped)
	t.Logf("allocations per clean request: %v with the wrapper, %v without", got, base)
	assert.Equal(t, base, got)
}

// otlpReceiver runs the real OTLP receiver, gRPC and HTTP, in front of
// next, as in the collector, and returns its gRPC client and HTTP base URL.
func otlpReceiver(t *testing.T, next consumer.Metrics) (pmetricotlp.GRPCClient, string) {
	t.Helper()
	grpcAddr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	rf := otlpreceiver.NewFactory()
	cfg := rf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"protocols": map[string]any{
			"grpc": map[string]any{"endpoint": grpcAddr},
			"http": map[string]any{"endpoint": httpAddr},
		},
	}).Unmarshal(cfg))
	rcv, err := rf.CreateMetrics(context.Background(), receivertest.NewNopSettings(rf.Type()), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return pmetricotlp.NewGRPCClient(conn), "http://" + httpAddr
}

// TestOTLPReceiverAnswersInvalidArgument runs citytag behind the real OTLP
// receiver, as in the collector: a mixed request is answered with gRPC
// INVALID_ARGUMENT and HTTP 400 naming what was rejected, in the
// google.rpc.Status the probe reads, once: no "Permanent error: rpc error:
// code = InvalidArgument desc = " in front (internal/otlperror). The good
// points are passed on.
func TestOTLPReceiverAnswersInvalidArgument(t *testing.T) {
	h := newHarness(t, testConfig())
	client, base := otlpReceiver(t, h.proc.(consumer.Metrics))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(mixedRequest()), grpc.WaitForReady(true))
	st, _ := status.FromError(err)
	assert.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	assert.Equal(t, mixedRefusal, st.Message())
	assert.Equal(t, 3, h.sink.DataPointCount(), "the good points are passed on")

	clean := pmetric.NewMetrics()
	addResource(clean, uplinkRes{"dvo-01", "Davao", "Smart", "5g"}, "Manila")
	_, err = client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(clean))
	assert.NoError(t, err, "a clean request is acknowledged")

	a, err := otlpload.PostHTTP(ctx, http.DefaultClient, base, mixedRequest())
	require.NoError(t, err)
	assert.Equal(t, otlpload.Answer{Status: http.StatusBadRequest, Message: mixedRefusal}, a)
	assert.Equal(t, 3+1+3, h.sink.DataPointCount())
}

// TestHostileValuesAreEscapedInTheRefusal: values citytag echoes (dst_city,
// carrier, network type, target, probe id) holding invalid UTF-8, control
// characters, newlines and quotes are refused with a 400 / INVALID_ARGUMENT
// naming the reason, the value Go-quoted. Echoed raw, invalid UTF-8 made
// the OTLP/HTTP receiver answer 500 {"code":13,"message":"failed to marshal
// error message"}.
func TestHostileValuesAreEscapedInTheRefusal(t *testing.T) {
	h := newHarness(t, testConfig())
	client, base := otlpReceiver(t, h.proc.(consumer.Metrics))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	long := strings.Repeat("é", 40) // 80 bytes: cut at a rune boundary
	for _, tc := range []struct {
		name string
		res  uplinkRes
		dst  string
		want string
	}{
		{"invalid UTF-8 dst_city", uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Dav\xffao",
			`citytag rejected 1 of 1 points; first: invalid_utf8 (probe mnl-01, target "reflector-Dav\xffao"): dst_city "Dav\xffao" is not valid UTF-8`},
		{"invalid UTF-8, no city", uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Goth\xffam",
			`citytag rejected 1 of 1 points; first: invalid_utf8 (probe mnl-01, target "reflector-Goth\xffam"): dst_city "Goth\xffam" is not valid UTF-8`},
		{"control characters", uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "a\x00b\nc\"d\x1b[31m",
			`citytag rejected 1 of 1 points; first: unknown_dst_city (probe mnl-01, target "reflector-a\x00b\nc\"d\x1b[31m"): dst_city "a\x00b\nc\"d\x1b[31m" is not in the gazetteer`},
		{"long multi-byte value", uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, long,
			`citytag rejected 1 of 1 points; first: unknown_dst_city (probe mnl-01, target "reflector-` + long[:54] + `…"): dst_city "` + long[:64] + `…" is not in the gazetteer`},
		{"carrier", uplinkRes{"mnl-01", "Manila", "Glo\xc3be", "5g"}, "Davao",
			`citytag rejected 1 of 1 points; first: invalid_utf8 (probe mnl-01): carrier "Glo\xc3be" is not valid UTF-8`},
		{"probe id", uplinkRes{"mnl\xff\n01", "Manila", "Globe", "5g"}, "Davao",
			`citytag rejected 1 of 1 points; first: unknown_probe (probe "mnl\xff\n01"): probe is not in the citytag registry`},
		{"emoji", uplinkRes{"mnl-01", "Manila", "Globe", "5g"}, "Gotham 🌴",
			`citytag rejected 1 of 1 points; first: unknown_dst_city (probe mnl-01, target "reflector-Gotham 🌴"): dst_city "Gotham 🌴" is not in the gazetteer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := pmetric.NewMetrics()
			addResource(md, tc.res, tc.dst)
			_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.WaitForReady(true))
			st, _ := status.FromError(err)
			assert.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
			assert.Equal(t, tc.want, st.Message())

			md = pmetric.NewMetrics()
			addResource(md, tc.res, tc.dst)
			a, err := otlpload.PostHTTP(ctx, http.DefaultClient, base, md)
			require.NoError(t, err)
			assert.Equal(t, otlpload.Answer{Status: http.StatusBadRequest, Message: tc.want}, a)
		})
	}
	assert.Zero(t, h.sink.DataPointCount())
}
