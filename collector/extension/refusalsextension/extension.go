package refusalsextension

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionmiddleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/collector/extension/refusalsextension/internal/metadata"
	"github.com/bantay-noc/bantay/internal/otlpcodec"
	"github.com/bantay-noc/bantay/internal/otlperror"
)

// Reasons a request is refused before the pipeline: the `reason` of
// bantay_otlp_refused_requests.
const (
	reasonContentType       = "content_type"       // HTTP 415: neither protobuf nor JSON
	reasonPath              = "path"               // HTTP 404: no such OTLP path
	reasonMethod            = "method"             // HTTP 405: not POST
	reasonTooLarge          = "too_large"          // over the receiver's body or message size limit (after decompression too)
	reasonBadBody           = "bad_body"           // the body could not be read: broken compression, cut short
	reasonMalformedProtobuf = "malformed_protobuf" // not an OTLP protobuf message
	reasonMalformedJSON     = "malformed_json"     // not OTLP JSON
	reasonUnimplemented     = "unimplemented"      // gRPC: unknown method or compression
	reasonOther             = "other"              // any other 4xx the receiver answered itself
)

type counter struct {
	component.StartFunc
	telemetry *metadata.TelemetryBuilder
}

var (
	_ extensionmiddleware.HTTPServer = (*counter)(nil)
	_ extensionmiddleware.GRPCServer = (*counter)(nil)
)

func newCounter(set extension.Settings) (*counter, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &counter{telemetry: tel}, nil
}

// Shutdown releases the telemetry.
func (c *counter) Shutdown(context.Context) error {
	c.telemetry.Shutdown()
	return nil
}

func (c *counter) add(ctx context.Context, transport, reason string) {
	c.telemetry.OtlpRefusedRequests.Add(ctx, 1, metric.WithAttributes(attribute.String("transport", transport), attribute.String("reason", reason)))
}

// GetHTTPHandler wraps the receiver's handler: it watches the body the
// receiver reads and the status it answers, and whether the request reached
// the pipeline (otlperror.MarkDecoded, called by citytag).
func (c *counter) GetHTTPHandler(context.Context) (extensionmiddleware.WrapHTTPHandlerFunc, error) {
	return func(_ context.Context, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, decoded := otlperror.TrackDecoded(r.Context())
			body := &watchedBody{ReadCloser: r.Body}
			r = r.WithContext(ctx)
			r.Body = body
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if decoded() {
				return
			}
			if reason := httpReason(sw.status, body.err, r.Header.Get("Content-Type")); reason != "" {
				c.add(ctx, "http", reason)
			}
		}), nil
	}, nil
}

// httpReason is the reason of a refusal the receiver answered itself with
// status, or "" when status is no refusal of the request's content:
// success, 401 (probeauth counts it), 429 and 5xx (overload, counted where
// it happens).
func httpReason(status int, bodyErr error, contentType string) string {
	var tooLarge *http.MaxBytesError
	switch {
	case status < 400 || status >= 500 || status == http.StatusUnauthorized || status == http.StatusTooManyRequests:
		return ""
	case status == http.StatusUnsupportedMediaType:
		return reasonContentType
	case status == http.StatusNotFound:
		return reasonPath
	case status == http.StatusMethodNotAllowed:
		return reasonMethod
	case errors.As(bodyErr, &tooLarge):
		return reasonTooLarge
	case bodyErr != nil:
		return reasonBadBody
	case status != http.StatusBadRequest:
		return reasonOther
	case strings.Contains(contentType, "json"):
		return reasonMalformedJSON
	}
	return reasonMalformedProtobuf
}

// watchedBody keeps the first read error other than EOF.
type watchedBody struct {
	io.ReadCloser
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// statusWriter keeps the status the handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// GetGRPCServerOptions gives the server three things. grpc-go decodes a
// message before any interceptor runs, and answers a message that does not
// decode with INTERNAL, which reads as a server fault; so the server's
// codec (otlpcodec) keeps a decoding error instead of returning it, the
// stats handler takes it as the message is received (stats.InPayload), and
// an interceptor refuses the call with INVALID_ARGUMENT before the OTLP
// handler runs. The stats handler also sees the calls grpc-go refuses
// itself (oversized, unknown compression or method) end, without a
// received message.
func (c *counter) GetGRPCServerOptions(context.Context) ([]grpc.ServerOption, error) {
	codec := otlpcodec.New()
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(codec),
		grpc.StatsHandler(grpcStats{c: c, codec: codec}),
		grpc.ChainUnaryInterceptor(c.refuseUndecodable),
	}, nil
}

// refuseUndecodable answers a call whose message did not decode.
func (c *counter) refuseUndecodable(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if st, ok := ctx.Value(rpcKey{}).(*rpcState); ok {
		if err := st.undecodable.Load(); err != nil {
			c.add(ctx, "grpc", reasonMalformedProtobuf)
			return nil, status.Errorf(codes.InvalidArgument, "malformed OTLP protobuf: %v", *err)
		}
	}
	return handler(ctx, req)
}

type grpcStats struct {
	c     *counter
	codec *otlpcodec.Codec
}

type rpcKey struct{}

// rpcState is what the stats handler learns of one call.
type rpcState struct {
	received    atomic.Bool           // a message was received (decoded or not)
	undecodable atomic.Pointer[error] // the message did not decode: why
}

func (grpcStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, rpcKey{}, new(rpcState))
}

func (g grpcStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	st, ok := ctx.Value(rpcKey{}).(*rpcState)
	if !ok {
		return
	}
	switch s := s.(type) {
	case *stats.InPayload:
		st.received.Store(true)
		// Taken here, for every message, so that the codec keeps none:
		// an interceptor before refuseUndecodable (probeauth's) may answer
		// the call first.
		if err := g.codec.Failure(s.Payload); err != nil {
			st.undecodable.Store(&err)
		}
	case *stats.End:
		if s.Error == nil || st.received.Load() {
			return // answered, or refused by an interceptor or the pipeline
		}
		if reason := grpcReason(status.Code(s.Error)); reason != "" {
			g.c.add(ctx, "grpc", reason)
		}
	}
}

// grpcReason is the reason of a call that ended with code before its
// message was received, or "" for a sender that gave up or went away.
func grpcReason(code codes.Code) string {
	switch code {
	case codes.Internal:
		// Not a message that failed to decode (refuseUndecodable answers
		// those): a compressed one that failed to decompress.
		return reasonBadBody
	case codes.ResourceExhausted:
		return reasonTooLarge
	case codes.Unimplemented:
		return reasonUnimplemented
	}
	return ""
}

func (grpcStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (grpcStats) HandleConn(context.Context, stats.ConnStats) {}
