package tsdbexporter

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/bantay-noc/bantay/exporters/tsdbexporter/internal/metadata"
	"github.com/bantay-noc/bantay/internal/store"
)

func TestPushIsStoredBeforeItReturns(t *testing.T) {
	s, err := store.Open(store.DefaultConfig(t.TempDir()), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer s.Close()
	cfg := createDefaultConfig()
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), hosttest.With(&hosttest.Provider{TSDB: s})))
	defer exp.Shutdown(context.Background())

	now := time.Now()
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("probe.up")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetIntValue(1)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	require.NoError(t, exp.ConsumeMetrics(context.Background(), md))

	q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil, "probe_up", now)
	require.NoError(t, err)
	res := q.Exec(context.Background())
	require.NoError(t, res.Err)
	v, err := res.Vector()
	require.NoError(t, err)
	require.Len(t, v, 1, "a nil error from the exporter means the sample is queryable")
	assert.Equal(t, 1.0, v[0].F)
}

func TestStartNamesTheMissingExtension(t *testing.T) {
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), createDefaultConfig())
	require.NoError(t, err)
	err = exp.Start(context.Background(), hosttest.Host{})
	assert.ErrorContains(t, err, `extension "bantay" is not configured`)

	type other struct {
		component.StartFunc
		component.ShutdownFunc
	}
	err = exp.Start(context.Background(), hosttest.Host{component.MustNewID("bantay"): other{}})
	assert.ErrorContains(t, err, `extension "bantay" is a tsdbexporter.other, not the bantay extension`)
}
