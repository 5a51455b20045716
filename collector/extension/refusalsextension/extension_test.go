package refusalsextension

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/collector/extension/refusalsextension/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/configtest"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/otlperror"
)

func TestConfig(t *testing.T) {
	cfg, err := configtest.Load[Config](t, NewFactory(), "")
	require.NoError(t, err)
	assert.Equal(t, &Config{}, cfg)
}

// TestCountsWhatTheReceiverRefuses runs the real OTLP receiver with the
// middleware on both servers, in front of a stand-in for citytag that
// refuses every request it gets: what the receiver refuses itself is
// counted by transport and reason, what reached the pipeline is not, and
// nothing accepted is.
func TestCountsWhatTheReceiverRefuses(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := extensiontest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	ext, err := NewFactory().Create(context.Background(), set, &Config{})
	require.NoError(t, err)
	host := hosttest.Host{component.NewID(metadata.Type): ext}

	grpcAddr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	mw := []any{map[string]any{"id": metadata.Type.String()}}
	rf := otlpreceiver.NewFactory()
	cfg := rf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{
		"grpc": map[string]any{"endpoint": grpcAddr, "middlewares": mw},
		"http": map[string]any{"endpoint": httpAddr, "middlewares": mw, "max_request_body_size": 1 << 20},
	}}).Unmarshal(cfg))
	refuse := false
	pipeline, err := consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
		otlperror.MarkDecoded(ctx)
		if refuse {
			return otlperror.Permanent(codes.InvalidArgument, "citytag rejected it")
		}
		return nil
	})
	require.NoError(t, err)
	rcv, err := rf.CreateMetrics(context.Background(), receivertest.NewNopSettings(rf.Type()), cfg, pipeline)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })

	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("bantay.test")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	good, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)

	post := func(path, contentType string, body []byte) int {
		resp, err := http.Post("http://"+httpAddr+path, contentType, bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	const pb = "application/x-protobuf"
	assert.Equal(t, 200, post("/v1/metrics", pb, good))
	assert.Equal(t, 400, post("/v1/metrics", pb, good[:len(good)/2]))
	assert.Equal(t, 400, post("/v1/metrics", "application/json", []byte(`{"resourceMetrics": [`)))
	assert.Equal(t, 415, post("/v1/metrics", "text/plain", good))
	assert.Equal(t, 400, post("/v1/metrics", pb, make([]byte, 2<<20)))
	refuse = true
	assert.Equal(t, 400, post("/v1/metrics", pb, good), "the pipeline's refusal")

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	export := func(body []byte) codes.Code {
		err := otlpload.ExportRaw(context.Background(), conn, body, grpc.MaxCallSendMsgSize(16<<20))
		return status.Code(err)
	}
	assert.Equal(t, codes.InvalidArgument, export(good), "the pipeline's refusal")
	refuse = false
	assert.Equal(t, codes.OK, export(good))
	// Not INTERNAL, grpc-go's own answer to a message that does not decode.
	for _, body := range [][]byte{[]byte("\x0a\xff\xff\xff\xff\x0fnot a protobuf"), good[:len(good)/2]} {
		err := otlpload.ExportRaw(context.Background(), conn, body)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		assert.Contains(t, status.Convert(err).Message(), "malformed OTLP protobuf: ")
	}
	assert.Equal(t, codes.OK, export(good), "a good request after the undecodable ones")
	// A message flagged gzip that is not: grpc-go's decompressor answers
	// INTERNAL before any codec, counted as bad_body.
	// (The registry is the process's: the server decompresses with the real
	// gzip, the client "compresses" with nothing.)
	realGzip := encoding.GetCompressor(grpcgzip.Name)
	encoding.RegisterCompressor(lyingGzip{realGzip})
	err = otlpload.ExportRaw(context.Background(), conn, good, grpc.UseCompressor(grpcgzip.Name))
	encoding.RegisterCompressor(realGzip)
	assert.Equal(t, codes.Internal, status.Code(err), "%v", err)
	assert.Equal(t, codes.ResourceExhausted, export(make([]byte, 8<<20)))

	m, err := tel.GetMetric("bantay_otlp_refused_requests")
	require.NoError(t, err)
	got := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		tr, _ := dp.Attributes.Value("transport")
		r, _ := dp.Attributes.Value("reason")
		got[tr.AsString()+"/"+r.AsString()] += dp.Value
	}
	assert.Equal(t, map[string]int64{
		"http/malformed_protobuf": 1, "http/malformed_json": 1, "http/content_type": 1, "http/too_large": 1,
		"grpc/malformed_protobuf": 2, "grpc/too_large": 1, "grpc/bad_body": 1,
	}, got)
}

// lyingGzip is gzip that sends its input as it is.
type lyingGzip struct{ encoding.Compressor }

func (lyingGzip) Compress(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestHTTPReason(t *testing.T) {
	for _, tc := range []struct {
		status      int
		err         error
		contentType string
		want        string
	}{
		{200, nil, "application/x-protobuf", ""},
		{401, nil, "application/x-protobuf", ""},
		{429, nil, "application/x-protobuf", ""},
		{503, nil, "application/x-protobuf", ""},
		{404, nil, "", reasonPath},
		{405, nil, "", reasonMethod},
		{400, &http.MaxBytesError{Limit: 1}, "application/x-protobuf", reasonTooLarge},
		{400, strings.NewReader("").UnreadByte(), "application/x-protobuf", reasonBadBody},
		{403, nil, "application/x-protobuf", reasonOther},
	} {
		assert.Equal(t, tc.want, httpReason(tc.status, tc.err, tc.contentType), "%d %v", tc.status, tc.err)
	}
}
