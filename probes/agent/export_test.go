package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
)

// TestHTTPProtocol sends over OTLP/HTTP to a plain HTTP server that decodes
// the protobuf body, with the token read from token_file.
func TestHTTPProtocol(t *testing.T) {
	var mu sync.Mutex
	var got []*colmetricspb.ExportMetricsServiceRequest
	var auth, probeIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &colmetricspb.ExportMetricsServiceRequest{}
		if r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		auth = append(auth, r.Header.Get("Authorization"))
		probeIDs = append(probeIDs, r.Header.Get("Bantay-Probe-Id"))
		mu.Unlock()
		b, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	defer srv.Close()

	cfg := testConfig(t, "127.0.0.1:1", startReflector(t), testenv.FreeAddr(t))
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("from-file\n"), 0o600)
	cfg.Collector.Protocol, cfg.Collector.Endpoint = "http", srv.URL
	cfg.Collector.Token, cfg.Collector.TokenFile = "", tokenFile
	stop := runAgent(t, cfg, nil)
	waitFor(t, "an OTLP/HTTP export with latencies", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, req := range got {
			for _, rm := range req.ResourceMetrics {
				if m := metricsByName(rm)[metricmodel.Latency]; m != nil && len(m.GetHistogram().DataPoints) > 0 {
					return true
				}
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auth {
		if a != "Bearer from-file" {
			t.Fatalf("Authorization %q, want the token from the file, trimmed", a)
		}
	}
	for _, id := range probeIDs {
		if id != "mnl-01" {
			t.Fatalf("Bantay-Probe-Id %q, want mnl-01", id)
		}
	}
}

// TestTLS checks ca_file, server_name and a client certificate (mTLS)
// against a receiver that requires all of them, over gRPC and over HTTP.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	serverCert := issue(t, ca, caKey, "collector.bantay.test", x509.ExtKeyUsageServerAuth)
	clientCert := issue(t, ca, caKey, "mnl-01", x509.ExtKeyUsageClientAuth)
	writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", clientCert.Certificate[0])
	keyDER, _ := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	writePEM(t, filepath.Join(dir, "client-key.pem"), "PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverTLS := &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	run := func(t *testing.T, protocol, endpoint string, delivered func() bool) {
		cfg := testConfig(t, "127.0.0.1:1", startReflector(t), testenv.FreeAddr(t))
		cfg.Collector.Protocol, cfg.Collector.Endpoint = protocol, endpoint
		cfg.Collector.TLS.Insecure = false
		cfg.Collector.TLS.CAFile = filepath.Join(dir, "ca.pem")
		cfg.Collector.TLS.CertFile = filepath.Join(dir, "client.pem")
		cfg.Collector.TLS.KeyFile = filepath.Join(dir, "client-key.pem")
		cfg.Collector.TLS.ServerName = "collector.bantay.test"
		stop := runAgent(t, cfg, nil)
		waitFor(t, "an export over mTLS", 20*time.Second, delivered)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("grpc", func(t *testing.T) {
		addr := testenv.FreeAddr(t)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		recv := &receiver{srv: grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))}
		colmetricspb.RegisterMetricsServiceServer(recv.srv, recv)
		go recv.srv.Serve(l)
		defer recv.srv.Stop()
		run(t, "grpc", addr, func() bool { return recv.count() > 0 })
	})

	t.Run("http", func(t *testing.T) {
		var accepted atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "no client certificate", http.StatusUnauthorized)
				return
			}
			accepted.Add(1)
			b, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceResponse{})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(b)
		}))
		srv.TLS = serverTLS
		srv.StartTLS()
		defer srv.Close()
		run(t, "http", srv.URL, func() bool { return accepted.Load() > 0 })
	})
}

func TestNewRejectsBadCredentials(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	empty := filepath.Join(dir, "empty-token")
	os.WriteFile(empty, []byte("  \n"), 0o600)
	cases := []struct {
		name string
		edit func(c *config.Collector)
		want string
	}{
		{"ca not pem", func(c *config.Collector) { c.TLS.Insecure = false; c.TLS.CAFile = notPEM }, "collector.tls.ca_file"},
		{"missing ca", func(c *config.Collector) { c.TLS.Insecure = false; c.TLS.CAFile = filepath.Join(dir, "nope") }, "collector.tls.ca_file"},
		{"bad keypair", func(c *config.Collector) {
			c.TLS.Insecure = false
			c.TLS.CertFile, c.TLS.KeyFile = notPEM, notPEM
		}, "collector.tls.cert_file"},
		{"empty token file", func(c *config.Collector) { c.Token = ""; c.TokenFile = empty }, "is empty"},
		{"missing token file", func(c *config.Collector) { c.Token = ""; c.TokenFile = filepath.Join(dir, "nope") }, "collector.token_file"},
	}
	for _, tc := range cases {
		cfg := testConfig(t, "127.0.0.1:4317", "127.0.0.1:7001", "127.0.0.1:7002")
		tc.edit(&cfg.Collector)
		_, err := New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New returned %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bantay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(fmt.Errorf("issue %s: %w", name, err))
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// flakyReceiver refuses its first exports the way an overloaded collector
// does, then accepts.
type flakyReceiver struct {
	*receiver
	mu       sync.Mutex
	refusals []error
	calls    int
}

func (f *flakyReceiver) Export(ctx context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	f.mu.Lock()
	f.calls++
	var err error
	if len(f.refusals) > 0 {
		err, f.refusals = f.refusals[0], f.refusals[1:]
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.receiver.Export(ctx, req)
}

// TestRetriesRetryableRefusals: the collector's overload answers (the
// store's RESOURCE_EXHAUSTED with RetryInfo, the memory limiter's
// UNAVAILABLE; over HTTP 429 and 503 with Retry-After) are retried within
// the same export, so the data arrives and no outage is logged.
func TestRetriesRetryableRefusals(t *testing.T) {
	t.Run("grpc", func(t *testing.T) {
		exhausted, err := status.New(codes.ResourceExhausted, "store overloaded").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(50 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		addr := testenv.FreeAddr(t)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		f := &flakyReceiver{receiver: &receiver{srv: grpc.NewServer()},
			refusals: []error{exhausted.Err(), status.Error(codes.Unavailable, "memory limiter")}}
		colmetricspb.RegisterMetricsServiceServer(f.srv, f)
		go f.srv.Serve(l)
		defer f.srv.Stop()

		cfg := testConfig(t, addr, startReflector(t), testenv.FreeAddr(t))
		cfg.Uplinks = cfg.Uplinks[:1]
		cfg.Collector.ExportInterval, cfg.Collector.Timeout = 200*time.Millisecond, 5*time.Second
		logs := &logRecorder{}
		stop := runAgent(t, cfg, slog.New(logs))
		waitFor(t, "an export accepted after two refusals", 20*time.Second, func() bool { return f.count() > 0 })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		calls := f.calls
		f.mu.Unlock()
		if calls < 3 {
			t.Errorf("%d export calls, want the two refusals retried", calls)
		}
		if n := logs.count("collector unreachable"); n != 0 {
			t.Errorf("refusals retried within one export were logged as an outage %d times", n)
		}
	})

	t.Run("http", func(t *testing.T) {
		var mu sync.Mutex
		var codesSeen []int
		accepted := 0
		refusals := []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			defer mu.Unlock()
			if len(refusals) > 0 {
				code := refusals[0]
				refusals = refusals[1:]
				codesSeen = append(codesSeen, code)
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(code)
				return
			}
			accepted++
			codesSeen = append(codesSeen, http.StatusOK)
			b, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceResponse{})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(b)
		}))
		defer srv.Close()

		cfg := testConfig(t, "127.0.0.1:1", startReflector(t), testenv.FreeAddr(t))
		cfg.Uplinks = cfg.Uplinks[:1]
		cfg.Collector.Protocol, cfg.Collector.Endpoint = "http", srv.URL
		cfg.Collector.ExportInterval, cfg.Collector.Timeout = 200*time.Millisecond, 5*time.Second
		logs := &logRecorder{}
		stop := runAgent(t, cfg, slog.New(logs))
		waitFor(t, "an export accepted after 429 and 503", 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return accepted > 0
		})
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(codesSeen) < 3 || codesSeen[0] != 429 || codesSeen[1] != 503 || codesSeen[2] != 200 {
			t.Errorf("answers %v, want 429 and 503 retried until 200", codesSeen)
		}
		if n := logs.count("collector unreachable"); n != 0 {
			t.Errorf("refusals retried within one export were logged as an outage %d times", n)
		}
	})
}

// failingExporter fails every export with its context's error, or with err.
type failingExporter struct {
	sdkmetric.Exporter
	err error
}

func (f failingExporter) Export(ctx context.Context, _ *metricdata.ResourceMetrics) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return f.err
}

// TestOutageExporterIgnoresAnAbandonedExport: the SDK cancels an export in
// flight when the provider shuts down (and then exports again); that is not
// a collector outage and must not be logged as one. A timeout is.
func TestOutageExporterIgnoresAnAbandonedExport(t *testing.T) {
	logs := &logRecorder{}
	e := &outageExporter{Exporter: failingExporter{err: errors.New("connection refused")}, logger: slog.New(logs), now: time.Now}
	if err := e.Export(canceled(), &metricdata.ResourceMetrics{}); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("collector unreachable"); n != 0 || e.undelivered() != nil {
		t.Fatalf("an export abandoned at shutdown was taken for an outage (%d lines, undelivered %v)", n, e.undelivered())
	}
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	e.Export(expired, &metricdata.ResourceMetrics{})
	e.Export(context.Background(), &metricdata.ResourceMetrics{})
	if n := logs.count("collector unreachable"); n != 1 || e.undelivered() == nil {
		t.Fatalf("timeouts and refusals: %d outage lines, undelivered %v; want one line and an undelivered error", n, e.undelivered())
	}
}

// refusal is what the store answers for samples it cannot store (the
// rest of the request is stored), as the collector's OTLP receiver
// passes it on: gRPC INVALID_ARGUMENT, over HTTP 400 with the
// google.rpc.Status as a protobuf body.
const refusal = "stored 12 samples; not stored: [out of order sample]"

// TestRefusalsAreNotOutages: a collector that answers and refuses the
// data, wholly (a permanent error) or in part (an OTLP partial success),
// is not "unreachable". The probe logs the collector's own message, once
// however many exports it refuses, and the recovery once.
func TestRefusalsAreNotOutages(t *testing.T) {
	for _, tc := range []struct {
		name, protocol string
		partial        bool
		want           string
	}{
		{"grpc permanent", "grpc", false, "export refused by the collector: " + refusal + " (gRPC InvalidArgument)"},
		{"grpc partial", "grpc", true, "export partly refused by the collector: " + refusal + " (3 metric data points rejected)"},
		{"http permanent", "http", false, "export refused by the collector: " + refusal + " (HTTP 400 Bad Request)"},
		{"http partial", "http", true, "export partly refused by the collector: " + refusal + " (3 metric data points rejected)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			refusing, refused := true, 0
			// answer decides one export's fate: a refusal (whole or
			// partial) while refusing, else acceptance.
			answer := func() (partial, whole bool) {
				mu.Lock()
				defer mu.Unlock()
				if !refusing {
					return false, false
				}
				refused++
				return tc.partial, !tc.partial
			}
			cfg := testConfig(t, "127.0.0.1:1", startReflector(t), testenv.FreeAddr(t))
			cfg.Uplinks = cfg.Uplinks[:1]
			if tc.protocol == "grpc" {
				cfg.Collector.Endpoint = startAnswering(t, answer)
			} else {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					partial, whole := answer()
					w.Header().Set("Content-Type", "application/x-protobuf")
					if whole {
						b, _ := proto.Marshal(status.New(codes.InvalidArgument, refusal).Proto())
						w.WriteHeader(http.StatusBadRequest)
						w.Write(b)
						return
					}
					b, _ := proto.Marshal(exportResponse(partial))
					w.Write(b)
				}))
				defer srv.Close()
				cfg.Collector.Protocol, cfg.Collector.Endpoint = "http", srv.URL
			}
			logs := &logRecorder{}
			stop := runAgent(t, cfg, slog.New(logs))
			waitFor(t, "several refused exports", 20*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return refused >= 4
			})
			mu.Lock()
			refusing = false
			mu.Unlock()
			waitFor(t, "the recovery to be logged", 20*time.Second, func() bool { return logs.count("delivered again after ") > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if n := logs.count(tc.want); n != 1 {
				t.Errorf("%d lines starting %q, want exactly one; log: %v", n, tc.want, logs.lines())
			}
			if n := logs.count("collector unreachable"); n != 0 {
				t.Errorf("a refusing collector was logged as unreachable %d times", n)
			}
		})
	}
}

func exportResponse(partial bool) *colmetricspb.ExportMetricsServiceResponse {
	if !partial {
		return &colmetricspb.ExportMetricsServiceResponse{}
	}
	return &colmetricspb.ExportMetricsServiceResponse{PartialSuccess: &colmetricspb.ExportMetricsPartialSuccess{
		RejectedDataPoints: 3, ErrorMessage: refusal,
	}}
}

// answering is an OTLP/gRPC receiver whose answers a function decides.
type answering struct {
	colmetricspb.UnimplementedMetricsServiceServer
	answer func() (partial, whole bool)
}

func (a answering) Export(context.Context, *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	partial, whole := a.answer()
	if whole {
		return nil, status.Error(codes.InvalidArgument, refusal)
	}
	return exportResponse(partial), nil
}

func startAnswering(t *testing.T, answer func() (partial, whole bool)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	colmetricspb.RegisterMetricsServiceServer(srv, answering{answer: answer})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// scriptedExporter fails its exports with the errors in its script, in
// order, then succeeds.
type scriptedExporter struct {
	sdkmetric.Exporter
	script []error
}

func (s *scriptedExporter) Export(context.Context, *metricdata.ResourceMetrics) error {
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}

// TestOutageExporterNamesEachCauseOnce: an outage whose cause changes (the
// collector is unreachable, then comes back and refuses) logs each cause
// once, and the undelivered error names the latest.
func TestOutageExporterNamesEachCauseOnce(t *testing.T) {
	unreachable := status.Error(codes.Unavailable, "connection refused")
	refused := fmt.Errorf("max retry time elapsed: %w", status.Error(codes.Unauthenticated, "bearer token belongs to no registered probe"))
	exp := &scriptedExporter{script: []error{unreachable, unreachable, refused, refused, unreachable, refused}}
	logs := &logRecorder{}
	e := &outageExporter{Exporter: exp, logger: slog.New(logs), now: time.Now}
	for range 6 {
		e.Export(context.Background(), &metricdata.ResourceMetrics{})
	}
	err := e.undelivered()
	if err == nil || !strings.HasPrefix(err.Error(), "export refused by the collector since ") {
		t.Errorf("undelivered: %v, want the refusal named", err)
	}
	e.Export(context.Background(), &metricdata.ResourceMetrics{})
	var msgs []string
	for _, l := range logs.lines() {
		msgs = append(msgs, l.msg)
	}
	if len(msgs) != 3 || !strings.HasPrefix(msgs[0], "collector unreachable;") ||
		!strings.HasPrefix(msgs[1], "export refused by the collector: bearer token belongs to no registered probe (gRPC Unauthenticated);") ||
		!strings.HasPrefix(msgs[2], "delivered again after ") {
		t.Errorf("log lines %q, want unreachable, refused, delivered again: one each", msgs)
	}
	if e.undelivered() != nil {
		t.Error("undelivered after a successful export")
	}
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		a    *answer
		want trouble
		msg  string
	}{
		{"no answer", errors.New("dial tcp 127.0.0.1:4317: connect: connection refused"), &answer{}, troubleUnreachable, "connection refused"},
		{"timeout", fmt.Errorf("%w: %w", context.DeadlineExceeded, status.Error(codes.Unavailable, "x")), nil, troubleUnreachable, "deadline"},
		{"overload after retries", fmt.Errorf("max retry time elapsed: %w", status.Error(codes.ResourceExhausted, "store overloaded")), nil, troubleUnreachable, "store overloaded"},
		{"http overload after retries", errors.New("max retry time elapsed: retry-able request failure"), &answer{status: 503}, troubleUnreachable, "retry-able"},
		{"grpc refusal", status.Error(codes.PermissionDenied, "no"), nil, troubleRefused, "no (gRPC PermissionDenied)"},
		{"http refusal", errors.New("failed to send metrics to http://c/v1/metrics: 401 Unauthorized (body: \x0a\x16)"), &answer{status: 401, message: "bearer token belongs to no registered probe"}, troubleRefused, "bearer token belongs to no registered probe (HTTP 401 Unauthorized)"},
		{"http refusal, text body", errors.New("failed to send metrics: 413 (body: too large)"), &answer{status: 413}, troubleRefused, "body: too large"},
		{"partial, joined", errors.Join(errors.New("OTLP partial success: bad points (2 metric data points rejected)")), nil, troublePartial, "bad points (2 metric data points rejected)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := diagnose(tc.err, tc.a)
			if got != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("diagnose = %s, %q; want %s, containing %q", got.what(), msg, tc.want.what(), tc.msg)
			}
		})
	}
}

// TestFlightKeepsBodyOnlyForAQueue: the serialized request is taken (for
// gRPC, marshalled a second time) only when the uplink has a queue to put
// it in; without one it was a copy of every request for nothing.
func TestFlightKeepsBodyOnlyForAQueue(t *testing.T) {
	req := &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{SchemaUrl: "x"}}}
	want, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	invoked := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, keep := range []bool{false, true} {
		f := &flight{keep: keep}
		if err := flightInterceptor(withFlight(context.Background(), f), "/export", req, nil, nil, invoked); err != nil {
			t.Fatal(err)
		}
		if got := f.body != nil; got != keep {
			t.Errorf("keep %v: body taken %v", keep, got)
		} else if keep && string(f.body) != string(want) {
			t.Errorf("keep: body %x; want %x", f.body, want)
		}
	}
}
