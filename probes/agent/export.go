package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/bantay-noc/bantay/probes/config"
)

// newExporter builds the OTLP exporter one uplink's MeterProvider sends with.
func newExporter(ctx context.Context, c config.Collector) (sdkmetric.Exporter, error) {
	headers, err := authHeaders(c)
	if err != nil {
		return nil, err
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
		}
		if headers != nil {
			opts = append(opts, otlpmetrichttp.WithHeaders(headers))
		}
		if c.TLS.Insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		} else {
			opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tlsCfg))
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

func cumulative(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

// authHeaders returns the bearer-token header, or nil without a token.
func authHeaders(c config.Collector) (map[string]string, error) {
	token := c.Token
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("collector.token_file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("collector.token_file: %s is empty", c.TokenFile)
		}
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

// outageExporter wraps an exporter to report collector outages once: a
// warning at the first failed export, an info line "delivered again after
// <duration>" at the first success after that, and nothing in between.
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
	lastErr   error
}

func (e *outageExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := e.Exporter.Export(ctx, rm)
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
	switch {
	case err != nil && e.downSince.IsZero():
		e.downSince, e.failed, e.lastErr = e.now(), 1, err
		e.logger.Warn("collector unreachable; measuring continues and everything is sent when it is back", "error", err)
	case err != nil:
		e.failed++
		e.lastErr = err
	case !e.downSince.IsZero():
		d := e.now().Sub(e.downSince).Round(time.Millisecond)
		e.logger.Info(fmt.Sprintf("delivered again after %s", d), "outage", d, "failed_exports", e.failed)
		e.downSince, e.failed, e.lastErr = time.Time{}, 0, nil
	}
	return nil
}

// undelivered returns the last export error while the collector is down.
func (e *outageExporter) undelivered() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.downSince.IsZero() {
		return nil
	}
	return fmt.Errorf("collector unreachable since %s: %w", e.downSince.Format(time.RFC3339), e.lastErr)
}
