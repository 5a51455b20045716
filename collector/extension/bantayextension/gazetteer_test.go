package bantayextension

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor"
	"github.com/bantay-noc/bantay/exporters/heatmapexporter"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// wireCities is the cities part of a heatmap snapshot or delta (the
// protocol's city objects are gazetteer.City without aliases).
type wireCities struct {
	Type   string           `json:"type"`
	Cities []gazetteer.City `json:"cities"`
}

// probeExport is one export of a probe in Tuguegarao over Globe 4G: a
// cumulative latency histogram per destination, named as the probe
// config names them (aliases included).
func probeExport(t *testing.T, now time.Time, dsts ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	require.NoError(t, rm.Resource().Attributes().FromRaw(map[string]any{
		"service.name": "bantay-probe", "service.instance.id": "tug-01", "bantay.probe.city": "Tuguegarao City",
		"bantay.uplink.carrier": "Globe", "bantay.uplink.network_type": "LTE",
	}))
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("network.latency")
	m.SetUnit("ms")
	m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, d := range dsts {
		dp := m.Histogram().DataPoints().AppendEmpty()
		require.NoError(t, dp.Attributes().FromRaw(map[string]any{"dst_city": d, "target": "reflector-" + d}))
		dp.ExplicitBounds().FromRaw(aggregate.DefaultBounds)
		counts := make([]uint64, len(aggregate.DefaultBounds)+1)
		counts[11] = 10 // (25, 30] ms
		dp.BucketCounts().FromRaw(counts)
		dp.SetCount(10)
		dp.SetSum(280)
		dp.SetMin(26)
		dp.SetMax(30)
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-5 * time.Second)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	}
	return md
}

// TestOperatorCitiesReachTheHeatmap runs the components as a collector
// does: the bantay extension first, then the heatmap exporter and a
// citytag processor in front of it whose config adds two cities and
// corrects a shipped one. The operator states the cities once, in
// citytag's config; the heatmap (its snapshot, a page already open, and
// the gazetteer the bantay_events receiver reads) places them with their
// region, island group and coordinates, in north-to-south order.
func TestOperatorCitiesReachTheHeatmap(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = t.TempDir()
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(ctx)) }()
	host := hosttest.Host{component.NewID(metadata.Type): ext}

	// A wall opened before the pipelines start.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+cfg.NetAddr.Endpoint+hub.PathWS, nil)
	require.NoError(t, err)
	defer ws.Close()

	ef := heatmapexporter.NewFactory()
	exp, err := ef.CreateMetrics(ctx, exportertest.NewNopSettings(ef.Type()), ef.CreateDefaultConfig())
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, host))
	defer func() { require.NoError(t, exp.Shutdown(ctx)) }()

	pf := citytagprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*citytagprocessor.Config)
	pcfg.Cities = []gazetteer.City{
		{Name: "Tuguegarao", Region: "Cagayan Valley", IslandGroup: gazetteer.Luzon,
			Latitude: 17.6132, Longitude: 121.727, Aliases: []string{"Tuguegarao City", "TUG"}},
		{Name: "Puerto Princesa", Region: "MIMAROPA", IslandGroup: gazetteer.Luzon,
			Latitude: 9.7392, Longitude: 118.7353, Aliases: []string{"PPS"}},
		// A shipped city with the operator's own aliases and position.
		{Name: "Cebu", Region: "Central Visayas", IslandGroup: gazetteer.Visayas,
			Latitude: 10.3, Longitude: 123.9, Aliases: []string{"Sugbo", "Cebu City"}},
	}
	pcfg.Probes = map[string]citytagprocessor.ProbeEntry{
		"tug-01": {City: "TUG", Uplinks: []citytagprocessor.Uplink{{Carrier: "Globe", NetworkType: "4g"}}},
	}
	require.NoError(t, pcfg.Validate())
	proc, err := pf.CreateMetrics(ctx, processortest.NewNopSettings(pf.Type()), pcfg, exp)
	require.NoError(t, err)
	require.NoError(t, proc.Start(ctx, host))
	defer func() { require.NoError(t, proc.Shutdown(ctx)) }()

	// Receivers start after processors; what they read now is citytag's.
	gaz := ext.(*Server).Heatmap().Gazetteer()
	if c, ok := gaz.City("PPS"); !ok || c.IslandGroup != gazetteer.Luzon {
		t.Fatalf("heatmap gazetteer after citytag's start: PPS → %+v, %v", c, ok)
	}

	require.NoError(t, proc.ConsumeMetrics(ctx, probeExport(t, time.Now(), "PPS", "Sugbo", "Davao City", "Metro Manila")))

	// North to south by island group, then latitude; without citytag's
	// gazetteer the three operator's cities would come last, placeless.
	want := []gazetteer.City{
		{Name: "Tuguegarao", Region: "Cagayan Valley", IslandGroup: "Luzon", Latitude: 17.6132, Longitude: 121.727},
		{Name: "Manila", Region: "NCR", IslandGroup: "Luzon", Latitude: 14.5995, Longitude: 120.9842},
		{Name: "Puerto Princesa", Region: "MIMAROPA", IslandGroup: "Luzon", Latitude: 9.7392, Longitude: 118.7353},
		{Name: "Cebu", Region: "Central Visayas", IslandGroup: "Visayas", Latitude: 10.3, Longitude: 123.9},
		{Name: "Davao", Region: "Davao Region", IslandGroup: "Mindanao", Latitude: 7.1907, Longitude: 125.4553},
	}
	// The open wall gets the cities in a delta (within a broadcast tick or two).
	var got wireCities
	for got.Type != "delta" || len(got.Cities) != 5 {
		require.NoError(t, ws.SetReadDeadline(time.Now().Add(30*time.Second)))
		_, data, err := ws.ReadMessage()
		require.NoError(t, err)
		got = wireCities{}
		require.NoError(t, json.Unmarshal(data, &got))
	}
	assert.Equal(t, want, got.Cities, "cities in the open wall's delta")

	code, body := get(t, "http://"+cfg.NetAddr.Endpoint+hub.PathSnapshot)
	require.Equal(t, 200, code)
	var snap wireCities
	require.NoError(t, json.Unmarshal([]byte(body), &snap))
	assert.Equal(t, want, snap.Cities, "cities in a new snapshot")
}

// TestSeveralCitytagsTheLowestIDWins: with two citytag processors the heatmap
// uses the first by id, whatever order they start in, and says so when
// their cities differ.
func TestSeveralCitytagsTheLowestIDWins(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	set := extensiontest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	s := newServer(set, createDefaultConfig().(*Config))
	hm, err := heatmap.New(heatmap.Config{}, nil, nil)
	require.NoError(t, err)
	defer hm.Close()

	a, err := gazetteer.Extend([]gazetteer.City{{Name: "Tuguegarao", Region: "Cagayan Valley",
		IslandGroup: gazetteer.Luzon, Latitude: 17.6132, Longitude: 121.727}}, nil, nil)
	require.NoError(t, err)
	b := gazetteer.Default()
	// Before the heatmap exists (not what the collector does, but harmless):
	// kept, and applied when it is there.
	s.ShareGazetteer(component.MustNewIDWithName("citytag", "b"), b)
	s.gmu.Lock()
	s.heatmap = hm
	s.applyGazetteerLocked()
	s.gmu.Unlock()
	assert.Same(t, b, hm.Gazetteer())

	s.ShareGazetteer(component.MustNewIDWithName("citytag", "a"), a)
	assert.Same(t, a, hm.Gazetteer(), "citytag/a sorts before citytag/b")
	s.ShareGazetteer(component.MustNewIDWithName("citytag", "b"), b)
	assert.Same(t, a, hm.Gazetteer(), "a later start of citytag/b does not displace citytag/a")
	assert.NotZero(t, logs.FilterMessageSnippet("different cities").Len(), "the differing cities are reported")

	logs.TakeAll()
	s.ShareGazetteer(component.MustNewIDWithName("citytag", "b"), a)
	assert.Zero(t, logs.Len(), "the same cities are no conflict")
}
