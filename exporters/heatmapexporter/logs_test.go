package heatmapexporter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/bantay-noc/bantay/exporters/heatmapexporter/internal/metadata"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/hub"
)

type feedEntry struct {
	Time        int64  `json:"time"`
	Kind        string `json:"kind"`
	Level       string `json:"level"`
	Body        string `json:"body"`
	SrcCity     string `json:"src_city"`
	DstCity     string `json:"dst_city"`
	Carrier     string `json:"carrier"`
	NetworkType string `json:"network_type"`
	Probe       string `json:"probe"`
	TraceID     string `json:"trace_id"`
}

// TestLogsBecomeFeedEvents hands the exporter records in the format of
// docs/events.md (plus one that is not an event) and reads the feed back
// from the heatmap's snapshot.
func TestLogsBecomeFeedEvents(t *testing.T) {
	hm, err := heatmap.New(heatmap.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hm.Close() })
	exp, err := NewFactory().CreateLogs(context.Background(), exportertest.NewNopSettings(metadata.Type), createDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := hosttest.With(&hosttest.Provider{Map: hm})
	if err := exp.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })

	at := time.UnixMilli(1_795_665_600_000)
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	lr := lrs.AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetSeverityText("warn")
	lr.Body().SetStr("Davao → Manila via Smart 4g: 12 timeouts")
	a := lr.Attributes()
	a.PutStr("service", "bantay")
	a.PutStr("event.kind", "probe_failure")
	a.PutStr("src_city", "Davao")
	a.PutStr("dst_city", "Manila")
	a.PutStr("carrier", "Smart")
	a.PutStr("network_type", "4g")
	a.PutStr("probe", "davao-01")
	a.PutInt("count", 12)
	lr.SetTraceID(pcommon.TraceID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})

	other := lrs.AppendEmpty() // not a Bantay event: no event.kind
	other.Body().SetStr("some component log")

	lr2 := lrs.AppendEmpty()
	lr2.SetObservedTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Second)))
	lr2.SetSeverityText("INFO")
	lr2.Body().SetStr("rules reloaded: 3 groups")
	lr2.Attributes().PutStr("event.kind", "rules_reloaded")

	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	drain(t, exp)

	rec := httptest.NewRecorder()
	hm.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, hub.PathSnapshot, nil))
	var s struct {
		Events []feedEntry `json:"events"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, rec.Body.String())
	}
	want := []feedEntry{
		{Time: at.UnixMilli(), Kind: "probe_failure", Level: "warn", Body: "Davao → Manila via Smart 4g: 12 timeouts",
			SrcCity: "Davao", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g", Probe: "davao-01",
			TraceID: "deadbeef0102030405060708090a0b0c"}, // the failure's, to find its exemplar
		{Time: at.Add(time.Second).UnixMilli(), Kind: "rules_reloaded", Level: "info", Body: "rules reloaded: 3 groups"},
	}
	if len(s.Events) != len(want) {
		t.Fatalf("feed has %d events, want %d: %+v", len(s.Events), len(want), s.Events)
	}
	for i := range want {
		if s.Events[i] != want[i] {
			t.Errorf("event %d = %+v\nwant %+v", i, s.Events[i], want[i])
		}
	}
}
