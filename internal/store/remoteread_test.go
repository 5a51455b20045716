package store

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bantay-noc/bantay/internal/harness/promtest"
)

// TestRemoteReadServesARealPrometheus points a real Prometheus's remote_read
// at the store and queries, through that Prometheus, a series only the
// store holds. With the read handler's concurrency limit at 0 (its gate had
// no capacity) every read waited until the client gave up.
func TestRemoteReadServesARealPrometheus(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	require.NoError(t, s.AppendMetrics(context.Background(), latencyBatch(now, []uint64{2, 4, 2, 0}, 140)))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	// http.Server.Close, unlike httptest's, does not wait for handlers: a
	// failing run (reads stuck at the gate) ends instead of hanging.
	srv := &http.Server{Handler: http.StripPrefix("/api/v1", s.APIHandler(APIDeps{Registerer: prometheus.NewRegistry()}))}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	// read_recent: the Prometheus's own (empty) TSDB covers "now", and
	// without it the remote would only be asked for older data.
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(`global:
  evaluation_interval: 15s
remote_read:
  - url: %s/api/v1/read
    read_recent: true
    remote_timeout: 10s
`, base)), 0o600))
	prom := promtest.StartPrometheus(t, "--config.file="+cfgFile)

	// More reads at once than the concurrency limit (10): the extra ones
	// wait for a slot instead of failing or hanging.
	const reads = 12
	type answer struct {
		res promtest.Result
		err error
	}
	answers := make(chan answer, reads)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range reads {
		go func() {
			res, err := prom.Client().Query(ctx, `network_latency_milliseconds_count{src_city="Manila"}`, now)
			answers <- answer{res, err}
		}()
	}
	for range reads {
		a := <-answers
		require.NoError(t, a.err)
		assert.Empty(t, a.res.Warnings, "Prometheus warns when a remote read fails")
		vec, err := a.res.Vector()
		require.NoError(t, err)
		require.Len(t, vec, 1, "the series Bantay holds, read through Prometheus")
		assert.Equal(t, model.SampleValue(8), vec[0].Value)
		assert.Equal(t, model.LabelValue("Davao"), vec[0].Metric["dst_city"])
	}
}
