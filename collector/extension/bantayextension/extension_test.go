package bantayextension

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/configtest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

func load(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory(), name)
}

func TestConfig(t *testing.T) {
	cfg, err := load(t, "")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:18080", cfg.NetAddr.Endpoint)
	assert.Equal(t, 720*time.Hour, cfg.Storage.Retention)
	assert.Equal(t, 8, cfg.Storage.MaxConcurrentAppends)
	assert.Equal(t, 5*time.Minute, cfg.Query.LookbackDelta, "defaults survive a partial query block")
	assert.Equal(t, "/etc/bantay/prometheus.yml", cfg.PrometheusConfig)
	assert.Equal(t, component.MustNewIDWithName("probeauth", "edge"), cfg.Mesh.Authenticator)
	assert.Equal(t, 250000, cfg.Heatmap.Rebuild.HoldPoints, "in the flat heatmap section")
	assert.Equal(t, 5*time.Minute, cfg.Heatmap.Aggregation.Windows[1], "defaults survive a partial heatmap block")
	_, err = load(t, "bad_hold")
	assert.ErrorContains(t, err, "heatmap: rebuild_hold_points: must not be negative, got -1")

	_, err = load(t, "bad_retention")
	assert.ErrorContains(t, err, "retention: 5m0s is shorter than the 1h minimum")
	_, err = load(t, "bad_url")
	assert.ErrorContains(t, err, `external_url: "not a url" is not an absolute URL`)

	cfg, err = load(t, "access")
	require.NoError(t, err)
	assert.True(t, cfg.Access.Enabled())
	assert.Equal(t, "admin", cfg.Access.Credentials["ops"].Role)
	assert.Equal(t, 24*time.Hour, cfg.Access.Session.TTL)
	assert.Equal(t, 10, cfg.Access.FailedLogins.Burst, "defaults survive a partial access block")
	_, err = load(t, "access_bad_role")
	assert.ErrorContains(t, err, `access: credentials::grafana::role: "root" is not "reader" or "admin"`)
	_, err = load(t, "access_heatmap_token")
	assert.ErrorContains(t, err, "heatmap::token: remove it")
	assert.NotContains(t, err.Error(), "plaintext-secret")
	_, err = load(t, "access_any_origin")
	assert.ErrorContains(t, err, `heatmap::allowed_origins: "*"`)
	// Refused at validation, before the store is opened, not at Start.
	_, err = load(t, "bad_port")
	assert.ErrorContains(t, err, `endpoint: "127.0.0.1:99999": port "99999": `)
	_, err = load(t, "no_port")
	assert.ErrorContains(t, err, `endpoint: "127.0.0.1" is not host:port`)
	_, err = load(t, "bad_remote_read")
	assert.ErrorContains(t, err, "remote_read.concurrency_limit: must be at least 1, got 0")
	assert.Equal(t, 10, cfg.RemoteRead.ConcurrencyLimit, "Prometheus's default")
}

// gauge is a probe's request with one gauge point.
func gauge(name string, v float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName(name)
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(v)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	return md
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestServesEverythingOnOneListener starts the real extension and checks
// that the store, the Prometheus API, the heatmap, the web page, metrics
// and reload are all served, and that a restart keeps acknowledged data.
func TestServesEverythingOnOneListener(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = t.TempDir()
	base := "http://" + cfg.NetAddr.Endpoint

	start := func() *Server {
		ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
		require.NoError(t, err)
		require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
		return ext.(*Server)
	}
	srv := start()

	// Readiness follows the pipelines, not the extension's own start.
	code, _ := get(t, base+"/-/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code, "ready before the pipelines started")
	require.NoError(t, srv.Ready())
	code, body := get(t, base+"/-/ready")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Ready")
	require.NoError(t, srv.NotReady())
	code, _ = get(t, base+"/-/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code, "ready while receivers stop")

	require.NoError(t, srv.Store().AppendMetrics(context.Background(), gauge("bantay.test", 42)))

	for path, want := range map[string]string{
		"/api/v1/query?query=bantay_test": `"42"`,
		"/api/v1/status/buildinfo":        `"version":"3.`,
		"/api/v1/rules":                   `"groups":[]`,
		"/api/heatmap/snapshot":           `"type":"snapshot"`,
		"/":                               "<!doctype html>",
		"/metrics":                        "bantay_store_appended_samples_total",
		"/-/healthy":                      "Healthy",
	} {
		code, body := get(t, base+path)
		assert.Equal(t, http.StatusOK, code, path)
		assert.Contains(t, body, want, path)
	}
	resp, err := http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, metrics := get(t, base+"/metrics")
	assert.True(t, strings.Contains(metrics, `bantay_config_reloads_total{result="success"} 2`), "start and one reload")
	require.NoError(t, srv.Shutdown(context.Background()))

	srv = start()
	defer func() { require.NoError(t, srv.Shutdown(context.Background())) }()
	_, body = get(t, base+"/api/v1/query?query=bantay_test")
	assert.Contains(t, body, `"42"`, "data acknowledged before the restart is still there")
}

// TestNotReadyWhileTheStoreCannotWrite: on a full disk every append fails,
// so /-/ready answers 503 (it said 200 before) and bantay_store_writable is
// 0, until space returns and the store has repaired its WAL by itself.
func TestNotReadyWhileTheStoreCannotWrite(t *testing.T) {
	dir := testenv.Tmpfs(t, "30m")
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = dir + "/data"
	cfg.Storage.RecoveryInterval = 20 * time.Millisecond
	base := "http://" + cfg.NetAddr.Endpoint
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()
	srv := ext.(*Server)
	require.NoError(t, srv.Ready())
	code, _ := get(t, base+"/-/ready")
	require.Equal(t, http.StatusOK, code)

	free := testenv.FillDisk(t, dir, 0)
	err = srv.Store().AppendMetrics(context.Background(), gauge("bantay.full", 1))
	require.Error(t, err, "nothing can be written to a full disk")
	code, _ = get(t, base+"/-/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code, "ready while every append fails")
	_, metrics := get(t, base+"/metrics")
	assert.Contains(t, metrics, "\nbantay_store_writable 0\n")
	assert.Contains(t, metrics, `bantay_store_commit_failures_total{cause="no_space"} 1`)
	code, _ = get(t, base+"/api/v1/query?query=up")
	assert.Equal(t, http.StatusOK, code, "queries answer while the disk is full")

	free()
	code, _ = get(t, base+"/-/ready")
	for i := 0; i < 3000 && code != http.StatusOK; i++ { // bounded by count, not a deadline
		time.Sleep(10 * time.Millisecond)
		code, _ = get(t, base+"/-/ready")
	}
	assert.Equal(t, http.StatusOK, code, "ready again once the store can write")
	_, metrics = get(t, base+"/metrics")
	assert.Contains(t, metrics, "\nbantay_store_writable 1\n")
	require.NoError(t, srv.Store().AppendMetrics(context.Background(), gauge("bantay.full", 2)))
}
