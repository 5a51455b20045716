package probeauthextension

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"testing"

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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/tlstest"
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
// (tls.client_ca_file) and probeauth: over gRPC a probe without a token is
// identified by its verified certificate, exactly as by a token (citytag
// reads the same auth attribute), and a certificate with no registered
// name is refused. OTLP/HTTP does not hand authenticators the connection,
// so there a certificate without a token is refused.
func TestClientCertificateIdentifiesProbe(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	serverCert, serverKey, _ := ca.Issue(t, dir, "collector", tlstest.Leaf{CommonName: "collector", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	dvoCert, dvoKey, _ := ca.Issue(t, dir, "dvo-01", tlstest.Leaf{CommonName: "Davao probe", DNSNames: []string{"dvo-01.probes.test"}, Client: true})
	strayCert, strayKey, _ := ca.Issue(t, dir, "stray", tlstest.Leaf{CommonName: "stray.probes.test", Client: true})

	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := extensiontest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	ext, err := NewFactory().Create(context.Background(), set, &Config{
		Tokens:      map[string]string{"mnl-01": testHash},
		ClientCerts: map[string]string{"dvo-01": "dvo-01.probes.test"},
	})
	require.NoError(t, err)
	host := hosttest.Host{component.NewID(metadata.Type): ext}
	require.NoError(t, ext.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })

	grpcAddr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	tlsCfg := map[string]any{"cert_file": serverCert, "key_file": serverKey, "client_ca_file": ca.WriteCA(t, dir)}
	auth := map[string]any{"authenticator": metadata.Type.String()}
	rf := otlpreceiver.NewFactory()
	cfg := rf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{
		"grpc": map[string]any{"endpoint": grpcAddr, "auth": auth, "tls": tlsCfg},
		"http": map[string]any{"endpoint": httpAddr, "auth": auth, "tls": tlsCfg},
	}}).Unmarshal(cfg))
	var mu sync.Mutex
	var probes []any
	sink, err := consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
		mu.Lock()
		defer mu.Unlock()
		probes = append(probes, client.FromContext(ctx).Auth.GetAttribute(ProbeIDAttribute))
		return nil
	})
	require.NoError(t, err)
	rcv, err := rf.CreateMetrics(context.Background(), receivertest.NewNopSettings(rf.Type()), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })

	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("bantay.test")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	clientTLS := func(certFile, keyFile string) *tls.Config {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		require.NoError(t, err)
		return &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{c}}
	}
	export := func(certFile, keyFile string) error {
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(certFile, keyFile))))
		require.NoError(t, err)
		defer conn.Close()
		_, err = pmetricotlp.NewGRPCClient(conn).Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
		return err
	}

	require.NoError(t, export(dvoCert, dvoKey))
	mu.Lock()
	assert.Equal(t, []any{"dvo-01"}, probes, "the certificate's probe, as a token would have said")
	mu.Unlock()

	err = export(strayCert, strayKey)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), errUnknownCert.Error())
	assert.Equal(t, map[string]int64{reasonCert: 1}, (&fixture{tel: tel}).counter(t, "bantay_probeauth_failures", "reason"))

	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(dvoCert, dvoKey)}}
	resp, err := hc.Post("https://"+httpAddr+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "OTLP/HTTP needs a token even with a certificate")
	mu.Lock()
	assert.Len(t, probes, 1)
	mu.Unlock()
}
