package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bantay-noc/bantay/probes/config"
)

// probeIDHeader names the probe in every request. The collector never
// trusts it (the token says who a request is from); its probeauth
// extension names it when it refuses a request's token
// (probeauthextension.ProbeIDHeader).
const probeIDHeader = "bantay-probe-id"

// newExporter builds the OTLP exporter one uplink's MeterProvider sends with.
func newExporter(ctx context.Context, c config.Collector, probeID string) (sdkmetric.Exporter, error) {
	headers, err := authHeaders(c)
	if err != nil {
		return nil, err
	}
	if probeID != "" {
		if headers == nil {
			headers = map[string]string{}
		}
		headers[probeIDHeader] = probeID
	}
	var tlsCfg *tls.Config
	if !c.TLS.Insecure {
		if tlsCfg, err = clientTLS(c.TLS); err != nil {
			return nil, err
		}
	}
	retry := struct {
		Enabled                                      bool
		InitialInterval, MaxInterval, MaxElapsedTime time.Duration
	}{true, min(time.Second, c.Timeout/4), max(c.Timeout/2, 10*time.Millisecond), c.Timeout}

	switch c.Protocol {
	case config.ProtocolHTTP:
		u, err := url.Parse(c.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("collector.endpoint: %w", err)
		}
		// The endpoint is the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is:
		// the signal path is appended (http://host:4318 → …/v1/metrics).
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/metrics"
		opts := []otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpointURL(u.String()),
			otlpmetrichttp.WithTimeout(c.Timeout),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig(retry)),
			// Pinned, not left to OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE:
			// cumulative is what makes an outage lose resolution and never counts.
			otlpmetrichttp.WithTemporalitySelector(cumulative),
			otlpmetrichttp.WithHTTPClient(httpClient(tlsCfg, c.Timeout)),
		}
		if headers != nil {
			opts = append(opts, otlpmetrichttp.WithHeaders(headers))
		}
		if c.TLS.Insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		return otlpmetrichttp.New(ctx, opts...)
	default:
		opts := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpoint(c.Endpoint),
			otlpmetricgrpc.WithTimeout(c.Timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig(retry)),
			otlpmetricgrpc.WithTemporalitySelector(cumulative),
			// One WithDialOption: each replaces the last one's options.
			otlpmetricgrpc.WithDialOption(grpc.WithChainUnaryInterceptor(flightInterceptor),
				// gRPC's default reconnect backoff grows to two minutes; cap
				// it near the export interval so a returning collector is
				// noticed within about one interval.
				grpc.WithConnectParams(grpc.ConnectParams{
					Backoff: backoff.Config{
						BaseDelay:  min(time.Second, c.ExportInterval),
						Multiplier: 1.6,
						Jitter:     0.2,
						MaxDelay:   min(max(c.ExportInterval, time.Second), 30*time.Second),
					},
					MinConnectTimeout: c.Timeout,
				})),
		}
		if headers != nil {
			opts = append(opts, otlpmetricgrpc.WithHeaders(headers))
		}
		if c.TLS.Insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		} else {
			opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlpmetricgrpc.New(ctx, opts...)
	}
}

// httpClient is the OTLP/HTTP exporter's client: the exporter's own
// defaults (net/http's DefaultTransport settings) with the TLS settings,
// and every request passed through flightTransport.
func httpClient(tlsCfg *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &http.Client{Timeout: timeout, Transport: flightTransport{tr}}
}

// answer is the collector's answer to the last HTTP attempt of one export.
// The exporter's own error carries the status line and the raw body, which
// from the collector is a protobuf google.rpc.Status: unreadable in a log.
type answer struct {
	status  int    // HTTP status; 0 when the request got no answer
	message string // the google.rpc.Status message of a refusal
}

// flight is one export's passage through the transport, put in the
// export's context by outageExporter. The SDK's exporters keep the OTLP
// request they build to themselves; the transport is where it can be
// taken (to queue it if the collector does not acknowledge it) and where
// a queued request can be sent in its place, with the same connection,
// headers, retries and error handling as fresh data.
type flight struct {
	answer answer // HTTP only
	// keep says to take body: only an uplink with a queue has a use for
	// it, and taking it is a second serialized copy of every request (for
	// gRPC a second marshalling too).
	keep bool
	// body is the serialized ExportMetricsServiceRequest as first sent.
	body []byte
	// replay, when set, is a queued request to send instead of the one
	// the SDK built (which is then empty).
	replay []byte
}

type flightKey struct{}

func withFlight(ctx context.Context, f *flight) context.Context {
	return context.WithValue(ctx, flightKey{}, f)
}

func flightOf(ctx context.Context) *flight {
	f, _ := ctx.Value(flightKey{}).(*flight)
	return f
}

// flightInterceptor is flightTransport for OTLP/gRPC: it sees the request
// message of every attempt.
func flightInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if f := flightOf(ctx); f != nil {
		if f.replay != nil {
			r := &colmetricspb.ExportMetricsServiceRequest{}
			if err := proto.Unmarshal(f.replay, r); err != nil {
				// What the collector would answer: permanent, so the
				// item is dropped rather than retried forever (OTLP
				// retries DataLoss).
				return status.Errorf(codes.InvalidArgument, "queued request unreadable: %v", err)
			}
			req = r
		} else if m, ok := req.(proto.Message); ok && f.keep && f.body == nil {
			b, err := proto.Marshal(m)
			if err != nil {
				return err
			}
			f.body = b
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// maxStatusBody bounds what is read of a refusal's body.
const maxStatusBody = 64 << 10

// flightTransport takes the body of every OTLP/HTTP request into the
// *flight in its context (or sends the flight's replay instead), and
// records what the collector answered.
type flightTransport struct{ base http.RoundTripper }

func (t flightTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f := flightOf(req.Context())
	if f == nil {
		return t.base.RoundTrip(req)
	}
	switch {
	case f.replay != nil:
		req = req.Clone(req.Context())
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(f.replay)), int64(len(f.replay))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.replay)), nil }
	case f.keep && f.body == nil && req.GetBody != nil:
		// GetBody is a fresh reader on the exporter's buffer: the body
		// being sent is left alone.
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		f.body, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	resp, err := t.base.RoundTrip(req)
	f.answer = answer{}
	if err != nil {
		return resp, err
	}
	f.answer.status = resp.StatusCode
	if resp.StatusCode/100 != 2 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body)) // the exporter reads it too
		var st spb.Status
		if rerr == nil && proto.Unmarshal(body, &st) == nil {
			f.answer.message = st.GetMessage()
		}
	}
	return resp, nil
}

func cumulative(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

// authHeaders returns the bearer-token header, or nil without a token.
func authHeaders(c config.Collector) (map[string]string, error) {
	token, err := c.BearerToken()
	if err != nil {
		return nil, fmt.Errorf("collector.token_file: %w", err)
	}
	if token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

func clientTLS(t config.TLS) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("collector.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("collector.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("collector.tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// trouble is why an export failed, as far as the probe can tell.
type trouble uint8

const (
	// troubleUnreachable: no answer (network, timeout), or overload
	// refusals the retries did not outlast. Retrying is the cure.
	troubleUnreachable trouble = 1 << iota
	// troubleRefused: the collector answered and refused the request
	// (a permanent error: bad credential, data it cannot store).
	troubleRefused
	// troublePartial: the collector stored the request but for some
	// points (an OTLP partial success).
	troublePartial
)

// what is how the log line and the undelivered error name a trouble.
func (t trouble) what() string {
	switch t {
	case troubleRefused:
		return "export refused by the collector"
	case troublePartial:
		return "export partly refused by the collector"
	}
	return "collector unreachable"
}

// partialSuccessPrefix starts the text of the error the OTLP exporters
// return for a partial success (their PartialSuccess type is internal).
const partialSuccessPrefix = "OTLP partial success: "

// diagnose says why an export failed, and the collector's own words when it
// answered. a is the HTTP answer recorded for the export.
func diagnose(err error, a *answer) (trouble, string) {
	if msg, ok := partialSuccess(err); ok {
		return troublePartial, msg
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) && gs.GRPCStatus() != nil {
		s := gs.GRPCStatus()
		switch s.Code() {
		case codes.OK, codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		default:
			return troubleRefused, fmt.Sprintf("%s (gRPC %s)", s.Message(), s.Code())
		}
	}
	switch {
	case a == nil || a.status == 0 || a.status/100 == 2:
	case a.status == http.StatusTooManyRequests, a.status == http.StatusBadGateway,
		a.status == http.StatusServiceUnavailable, a.status == http.StatusGatewayTimeout:
	default:
		msg := a.message
		if msg == "" {
			msg = err.Error()
		}
		return troubleRefused, fmt.Sprintf("%s (HTTP %d %s)", msg, a.status, http.StatusText(a.status))
	}
	return troubleUnreachable, err.Error()
}

// partialSuccess finds a partial-success error in err's tree (the exporter
// joins it with whatever else went wrong) and returns the collector's
// message with the count of refused points.
func partialSuccess(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if msg, ok := strings.CutPrefix(err.Error(), partialSuccessPrefix); ok && !strings.Contains(msg, "\n") {
		return msg, true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if msg, ok := partialSuccess(e); ok {
				return msg, true
			}
		}
	case interface{ Unwrap() error }:
		return partialSuccess(u.Unwrap())
	}
	return "", false
}
