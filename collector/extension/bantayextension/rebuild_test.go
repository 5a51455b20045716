package bantayextension

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
	"github.com/bantay-noc/bantay/exporters/heatmapexporter"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/stalledstore"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

var mnlDvo = pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}

// latencyExport is one export of probe mnl-01's latency to Davao over
// Globe 5G, as citytag passes it on: a cumulative histogram started at
// start holding total answers, all in (25, 30] ms.
func latencyExport(at, start time.Time, total uint64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bantay-probe")
	rm.Resource().Attributes().PutStr("service.instance.id", "mnl-01")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("network.latency")
	m.SetUnit("ms")
	m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := m.Histogram().DataPoints().AppendEmpty()
	for k, v := range map[string]string{"src_city": mnlDvo.SrcCity, "dst_city": mnlDvo.DstCity, "carrier": mnlDvo.Carrier,
		"network_type": mnlDvo.NetworkType, "probe": "mnl-01", "target": "dvo-reflector:7"} {
		dp.Attributes().PutStr(k, v)
	}
	dp.ExplicitBounds().FromRaw(aggregate.DefaultBounds)
	counts := make([]uint64, len(aggregate.DefaultBounds)+1)
	counts[11] = total
	dp.BucketCounts().FromRaw(counts)
	dp.SetCount(total)
	dp.SetSum(28 * float64(total))
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	return md
}

// TestReadyWhileTheHeatmapRebuilds restarts the extension on a store with
// 20 minutes of a probe's latency, with a store so slow to read that the
// heatmap's rebuild waits until the test lets it go. The collector must be
// ready, and store what it is sent, while the rebuild waits (before, Start
// rebuilt synchronously and never returned here), and the export that
// arrived meanwhile must be on the wall once, after the history.
func TestReadyWhileTheHeatmapRebuilds(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = t.TempDir()
	base := "http://" + cfg.NetAddr.Endpoint
	newServer := func() *Server {
		ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(metadata.Type), cfg)
		require.NoError(t, err)
		return ext.(*Server)
	}

	srv := newServer()
	require.NoError(t, srv.Start(ctx, componenttest.NewNopHost()))
	now := time.Now()
	probeStart := now.Add(-2 * time.Hour)
	const steps, perStep = 80, 2
	var total uint64
	for i := range steps {
		total += perStep
		require.NoError(t, srv.Store().AppendMetrics(ctx, latencyExport(now.Add(-time.Duration(steps-i)*15*time.Second), probeStart, total)))
	}
	require.NoError(t, srv.Shutdown(ctx))

	srv = newServer()
	gate := make(chan struct{})
	srv.rebuildFrom = func(q storage.Queryable) storage.Queryable { return stalledstore.Queryable{Queryable: q, Gate: gate} }
	started := make(chan error, 1)
	go func() { started <- srv.Start(ctx, componenttest.NewNopHost()) }()
	select {
	case err := <-started:
		require.NoError(t, err)
	case <-time.After(time.Minute): // failsafe only: Start takes milliseconds here
		close(gate)
		require.NoError(t, <-started)
		require.NoError(t, srv.Shutdown(ctx))
		t.Fatal("the extension's Start waited for the heatmap's rebuild")
	}
	defer func() { require.NoError(t, srv.Shutdown(ctx)) }()
	require.NoError(t, srv.Ready()) // the collector says so once Start has returned
	code, _ := get(t, base+"/-/ready")
	assert.Equal(t, 200, code, "ready while the heatmap rebuilds")
	_, metrics := get(t, base+"/metrics")
	assert.Contains(t, metrics, "\nbantay_heatmap_rebuilding 1\n")

	// A live export while the rebuild waits: stored at once, and through
	// the real heatmap exporter (and its queue) held for the heatmap.
	ef := heatmapexporter.NewFactory()
	exp, err := ef.CreateMetrics(ctx, exportertest.NewNopSettings(ef.Type()), ef.CreateDefaultConfig())
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, hosttest.Host{component.NewID(metadata.Type): srv}))
	defer func() { require.NoError(t, exp.Shutdown(ctx)) }()
	const liveAnswers = 5
	live := latencyExport(time.Now(), probeStart, total+liveAnswers)
	require.NoError(t, srv.Store().AppendMetrics(ctx, live))
	require.NoError(t, exp.ConsumeMetrics(ctx, live))
	_, body := get(t, base+"/api/v1/query?query=network_latency_milliseconds_count")
	assert.Contains(t, body, `"165"`, "the live export is stored while the heatmap rebuilds")
	awaitMetric(t, base, `bantay_heatmap_rebuild_live_points_total{result="held"} 1`)

	close(gate)
	awaitMetric(t, base, "\nbantay_heatmap_rebuilding 0\n")
	_, metrics = get(t, base+"/metrics")
	assert.Contains(t, metrics, `bantay_heatmap_rebuild_live_points_total{result="replayed"} 1`)

	code, body = get(t, base+"/api/heatmap/drilldown?cell="+url.QueryEscape(mnlDvo.ID()))
	require.Equal(t, 200, code, body)
	var drill struct {
		Columns []struct {
			Count uint64 `json:"count"`
		} `json:"columns"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &drill))
	var shown uint64
	for _, c := range drill.Columns {
		shown += c.Count
	}
	// The first stored point is the stream's base (the probe started long
	// before); every later one, and the live one, adds its answers once.
	assert.Equal(t, uint64((steps-1)*perStep+liveAnswers), shown)
}

// awaitMetric polls the listener's /metrics until it shows want, at most
// 3,000 times 10 ms apart.
func awaitMetric(t *testing.T, base, want string) {
	t.Helper()
	var metrics string
	for range 3000 {
		if _, metrics = get(t, base+"/metrics"); strings.Contains(metrics, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("/metrics never showed %q", want)
}
