package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
			// gRPC's default reconnect backoff grows to two minutes; cap it
			// near the export interval so a returning collector is noticed
			// within about one interval.
			otlpmetricgrpc.WithDialOption(grpc.WithConnectParams(grpc.ConnectParams{
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
// and the collector's answers recorded for outageExporter.
func httpClient(tlsCfg *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &http.Client{Timeout: timeout, Transport: answerRecorder{tr}}
}

// answer is the collector's answer to the last HTTP attempt of one export.
// The exporter's own error carries the status line and the raw body, which
// from the collector is a protobuf google.rpc.Status: unreadable in a log.
type answer struct {
	status  int    // HTTP status; 0 when the request got no answer
	message string // the google.rpc.Status message of a refusal
}

type answerKey struct{}

// maxStatusBody bounds what is read of a refusal's body.
const maxStatusBody = 64 << 10

// answerRecorder records, into the *answer in the request's context (put
// there by outageExporter.Export), what the collector answered.
type answerRecorder struct{ base http.RoundTripper }

func (t answerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	a, _ := req.Context().Value(answerKey{}).(*answer)
	if a == nil {
		return resp, err
	}
	*a = answer{}
	if err != nil {
		return resp, err
	}
	a.status = resp.StatusCode
	if resp.StatusCode/100 != 2 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body)) // the exporter reads it too
		var st spb.Status
		if rerr == nil && proto.Unmarshal(body, &st) == nil {
			a.message = st.GetMessage()
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

// outageExporter wraps an exporter to report trouble delivering once: a
// warning at the first failed export saying why — the collector unreachable,
// or the collector refusing the data (wholly or in part) in its own words —
// an info line "delivered again after <duration>" at the first full success
// after that, and nothing in between. A failure of another kind during the
// same outage (the collector comes back but refuses) is logged once too.
//
// It swallows the export error. The SDK would otherwise hand every failure
// to the global OTel error handler, which logs once per export interval;
// and nothing is lost by not retrying sooner, because with cumulative
// temporality the next export carries everything measured meanwhile.
type outageExporter struct {
	sdkmetric.Exporter
	logger *slog.Logger
	now    func() time.Time
	// silent suppresses the log lines of an exporter being discarded.
	silent atomic.Bool

	mu        sync.Mutex
	downSince time.Time // zero while the collector accepts exports
	failed    int       // exports failed in the current outage
	logged    trouble   // the troubles logged in the current outage
	last      trouble   // the latest export's trouble
	lastErr   error
}

func (e *outageExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	var a answer
	err := e.Exporter.Export(context.WithValue(ctx, answerKey{}, &a), rm)
	if e.silent.Load() {
		return nil
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		// The reader is shutting down and abandoned this export; its
		// Shutdown exports everything again right away, and that result
		// is the one that counts. Not an outage (a timeout would be
		// DeadlineExceeded, and is one).
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		if !e.downSince.IsZero() {
			d := e.now().Sub(e.downSince).Round(time.Millisecond)
			e.logger.Info(fmt.Sprintf("delivered again after %s", d), "outage", d, "failed_exports", e.failed)
		}
		e.downSince, e.failed, e.logged, e.last, e.lastErr = time.Time{}, 0, 0, 0, nil
		return nil
	}
	if e.downSince.IsZero() {
		e.downSince = e.now()
	}
	t, msg := diagnose(err, &a)
	e.failed++
	e.last, e.lastErr = t, err
	if e.logged&t != 0 {
		return nil
	}
	e.logged |= t
	switch t {
	case troubleRefused:
		e.logger.Warn(t.what()+": "+msg+"; the collector is reachable: check its log and this probe's configuration", "error", err)
	case troublePartial:
		e.logger.Warn(t.what()+": "+msg+"; the rest was stored", "error", err)
	default:
		e.logger.Warn(t.what()+"; measuring continues and everything is sent when it is back", "error", err)
	}
	return nil
}

// undelivered returns the last export error while exports fail.
func (e *outageExporter) undelivered() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.downSince.IsZero() {
		return nil
	}
	return fmt.Errorf("%s since %s: %w", e.last.what(), e.downSince.Format(time.RFC3339), e.lastErr)
}
