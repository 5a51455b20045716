package probeauthextension

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/tlstest"
	"github.com/bantay-noc/bantay/probes/agent"
	"github.com/bantay-noc/bantay/probes/config"
)

func TestClientCertConfig(t *testing.T) {
	loaded, err := load(t, "certs")
	require.NoError(t, err, "certificates alone are enough")
	assert.Equal(t, "dvo-01.probes.bantay.example", loaded.ClientCerts["dvo-01"])
	cfg := &Config{ClientCerts: map[string]string{"dvo-01": "dvo-01.probes.test"}}
	cfg.ClientCerts["bag-01"] = "dvo-01.probes.test"
	assert.ErrorContains(t, cfg.Validate(), `client_certs::dvo-01: "dvo-01.probes.test" is also probe bag-01's certificate name`)
	cfg = &Config{ClientCerts: map[string]string{"dvo-01": " "}}
	assert.ErrorContains(t, cfg.Validate(), "client_certs::dvo-01: want the name in the probe's certificate")
}

// TestClientCertificateIdentifiesProbe runs a real OTLP receiver with mTLS
// (tls.client_ca_file) and probeauth, as the authenticator on gRPC and as
// the middleware on HTTP: over both a probe without a token is identified
// by its verified certificate, exactly as by a token (citytag reads the
// same auth attribute), and a certificate with no registered name is
// refused. As `auth:` on HTTP it cannot see the certificate (confighttp
// gives an authenticator the headers only): there a certificate alone is
// refused.
func TestClientCertificateIdentifiesProbe(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	serverCert, serverKey, _ := ca.Issue(t, dir, "collector", tlstest.Leaf{CommonName: "collector", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	dvoCert, dvoKey, _ := ca.Issue(t, dir, "dvo-01", tlstest.Leaf{CommonName: "Davao probe", DNSNames: []string{"dvo-01.probes.test"}, Client: true})
	strayCert, strayKey, _ := ca.Issue(t, dir, "stray", tlstest.Leaf{CommonName: "stray.probes.test", Client: true})

	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := extensiontest.NewNopSettings(NewFactory().Type())
	set.TelemetrySettings = tel.NewTelemetrySettings()
	ext, err := NewFactory().Create(context.Background(), set, &Config{
		Tokens:      map[string]string{"mnl-01": testHash},
		ClientCerts: map[string]string{"dvo-01": "dvo-01.probes.test"},
	})
	require.NoError(t, err)
	host := hosttest.Host{component.NewID(NewFactory().Type()): ext}
	require.NoError(t, ext.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })

	grpcAddr, httpAddr, httpAuthAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	tlsCfg := map[string]any{"cert_file": serverCert, "key_file": serverKey, "client_ca_file": ca.WriteCA(t, dir)}
	auth := map[string]any{"authenticator": NewFactory().Type().String()}
	var mu sync.Mutex
	var probes []any
	sink, err := consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
		mu.Lock()
		defer mu.Unlock()
		probes = append(probes, client.FromContext(ctx).Auth.GetAttribute(ProbeIDAttribute))
		return nil
	})
	require.NoError(t, err)
	startReceiver(t, host, sink, map[string]any{
		"grpc": map[string]any{"endpoint": grpcAddr, "auth": auth, "tls": tlsCfg},
		"http": map[string]any{"endpoint": httpAddr, "middlewares": []any{map[string]any{"id": NewFactory().Type().String()}}, "tls": tlsCfg},
	})
	startReceiver(t, host, sink, map[string]any{"http": map[string]any{"endpoint": httpAuthAddr, "auth": auth, "tls": tlsCfg}})

	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("bantay.test")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	clientTLS := func(certFile, keyFile string) *tls.Config {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		require.NoError(t, err)
		return &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{c}}
	}
	exportWith := func(ctx context.Context, certFile, keyFile string) error {
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(certFile, keyFile))))
		require.NoError(t, err)
		defer conn.Close()
		_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
		return err
	}
	export := func(certFile, keyFile string) error { return exportWith(context.Background(), certFile, keyFile) }

	require.NoError(t, export(dvoCert, dvoKey))
	mu.Lock()
	assert.Equal(t, []any{"dvo-01"}, probes, "the certificate's probe, as a token would have said")
	mu.Unlock()

	err = export(strayCert, strayKey)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), errUnknownCert.Error())
	assert.Equal(t, map[string]int64{reasonCert: 1}, (&fixture{tel: tel}).counter(t, "bantay_probeauth_failures", "reason"))

	// A certificate adds to a token: mnl-01's token ("test") with dvo-01's
	// certificate is refused; with one that names no probe the token decides.
	withToken := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer test")
	err = exportWith(withToken, dvoCert, dvoKey)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), errCertMismatch.Error())
	require.NoError(t, exportWith(withToken, strayCert, strayKey))
	mu.Lock()
	assert.Equal(t, []any{"dvo-01", "mnl-01"}, probes)
	probes = probes[:1]
	mu.Unlock()
	assert.Equal(t, map[string]int64{reasonCert: 1, reasonMismatch: 1}, (&fixture{tel: tel}).counter(t, "bantay_probeauth_failures", "reason"))

	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	post := func(addr, certFile, keyFile string) (int, string) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(certFile, keyFile)}}
		resp, err := hc.Post("https://"+addr+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var st spb.Status
		b, _ := io.ReadAll(resp.Body)
		_ = proto.Unmarshal(b, &st)
		return resp.StatusCode, st.GetMessage()
	}
	code, _ := post(httpAddr, dvoCert, dvoKey)
	assert.Equal(t, http.StatusOK, code, "OTLP/HTTP with probeauth as middleware: the certificate is enough")
	mu.Lock()
	assert.Equal(t, []any{"dvo-01", "dvo-01"}, probes)
	mu.Unlock()
	code, msg := post(httpAddr, strayCert, strayKey)
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, errUnknownCert.Error(), msg, "the refusal is a google.rpc.Status, as the receiver's own")
	assert.Equal(t, map[string]int64{reasonCert: 2, reasonMismatch: 1}, (&fixture{tel: tel}).counter(t, "bantay_probeauth_failures", "reason"))

	code, _ = post(httpAuthAddr, dvoCert, dvoKey)
	assert.Equal(t, http.StatusUnauthorized, code, "as auth: on OTLP/HTTP probeauth sees no certificate")
	mu.Lock()
	assert.Len(t, probes, 2)
	mu.Unlock()
}

// startReceiver runs a real OTLP receiver with protocols into sink.
func startReceiver(t *testing.T, host component.Host, sink consumer.Metrics, protocols map[string]any) {
	t.Helper()
	rf := otlpreceiver.NewFactory()
	cfg := rf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"protocols": protocols}).Unmarshal(cfg))
	rcv, err := rf.CreateMetrics(context.Background(), receivertest.NewNopSettings(rf.Type()), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
}

// TestProbeWithCertificateOverHTTP runs a real probe (probes/agent) that
// has a client certificate and no token against a real OTLP/HTTP receiver
// with probeauth as its middleware: its measurements arrive as its own.
func TestProbeWithCertificateOverHTTP(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	serverCert, serverKey, _ := ca.Issue(t, dir, "collector", tlstest.Leaf{CommonName: "collector", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	dvoCert, dvoKey, _ := ca.Issue(t, dir, "dvo-01", tlstest.Leaf{CommonName: "Davao probe", DNSNames: []string{"dvo-01.probes.test"}, Client: true})
	caFile := ca.WriteCA(t, dir)

	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(NewFactory().Type()),
		&Config{ClientCerts: map[string]string{"dvo-01": "dvo-01.probes.test"}})
	require.NoError(t, err)
	host := hosttest.Host{component.NewID(NewFactory().Type()): ext}
	require.NoError(t, ext.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	var mu sync.Mutex
	var got []string
	sink, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		id, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("service.instance.id")
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%v as %s", client.FromContext(ctx).Auth.GetAttribute(ProbeIDAttribute), id.Str()))
		return nil
	})
	require.NoError(t, err)
	addr := testenv.FreeAddr(t)
	startReceiver(t, host, sink, map[string]any{"http": map[string]any{"endpoint": addr,
		"middlewares": []any{map[string]any{"id": NewFactory().Type().String()}},
		"tls":         map[string]any{"cert_file": serverCert, "key_file": serverKey, "client_ca_file": caFile}}})

	target, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer target.Close()
	cfg, err := config.Parse("probe.yaml", fmt.Appendf(nil, `
probe: {id: dvo-01, city: Davao}
collector:
  protocol: http
  endpoint: https://%s
  tls: {ca_file: %s, cert_file: %s, key_file: %s}
  export_interval: 100ms
  timeout: 2s
uplinks:
  - {name: globe-5g, carrier: Globe, network_type: 5g}
defaults: {interval: 50ms, timeout: 40ms}
targets:
  - {name: manila-tcp, dst_city: Manila, method: tcp, address: "%s"}
`, addr, caFile, dvoCert, dvoKey, target.Addr()))
	require.NoError(t, err)
	a, err := agent.New(cfg, nil)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	require.NoError(t, <-done, "every export was delivered")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, got, "no export arrived within 30 s")
	for _, g := range got {
		assert.Equal(t, "dvo-01 as dvo-01", g)
	}
}
