package lokiexporter

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// event appends one Bantay event record with the attributes producers set.
func event(lrs plog.LogRecordSlice, at time.Time, kind, probe, srcCity, carrier, msg string) plog.LogRecord {
	lr := lrs.AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
	lr.Body().SetStr(msg)
	a := lr.Attributes()
	a.PutStr("service", "bantay")
	a.PutStr("event.kind", kind)
	a.PutStr("src_city", srcCity)
	a.PutStr("carrier", carrier)
	a.PutStr("island_group", "Luzon")
	if probe != "" {
		a.PutStr("probe", probe)
	}
	return lr
}

func newLogs() (plog.Logs, plog.LogRecordSlice) {
	ld := plog.NewLogs()
	return ld, ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
}

func metaMap(e push.Entry) map[string]string {
	m := map[string]string{}
	for _, l := range e.StructuredMetadata {
		m[l.Name] = l.Value
	}
	return m
}

func TestConvertLabelsMetadataAndLine(t *testing.T) {
	ld, lrs := newLogs()
	lr := event(lrs, t0, "path_degraded", "dvo-01", "Davao", "Globe", "Davao → Manila on Globe 5g degraded")
	a := lr.Attributes()
	a.PutStr("dst_city", "Manila")
	a.PutStr("network_type", "5g")
	a.PutDouble("p95_before_ms", 21.5)
	a.PutDouble("p95_after_ms", 187)
	a.PutDouble("loss_ratio", 0.04)
	a.PutInt("count", 3)
	a.PutDouble("weird", math.NaN())
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	lr.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})

	streams := newConverter(defaultLabels(), nil).convert(ld, t0)
	if len(streams) != 1 {
		t.Fatalf("got %d streams, want 1", len(streams))
	}
	s := streams[0]
	// Sorted by name, values quoted the way Prometheus/Loki parse them.
	if want := `{carrier="Globe", island_group="Luzon", kind="path_degraded", service="bantay", src_city="Davao"}`; s.Labels != want {
		t.Errorf("labels\n got %s\nwant %s", s.Labels, want)
	}
	e := s.Entries[0]
	if !e.Timestamp.Equal(t0) {
		t.Errorf("timestamp %s", e.Timestamp)
	}
	wantMeta := map[string]string{
		"probe": "dvo-01", "dst_city": "Manila", "network_type": "5g",
		"p95_before_ms": "21.5", "p95_after_ms": "187", "loss_ratio": "0.04", "count": "3", "weird": "NaN",
		"trace_id": "0102030405060708090a0b0c0d0e0f10", "span_id": "0102030405060708", "level": "warn",
	}
	got := metaMap(e)
	for k, v := range wantMeta {
		if got[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, got[k], v)
		}
	}
	for _, label := range []string{"service", "event_kind", "src_city", "carrier", "island_group"} {
		if _, dup := got[label]; dup {
			t.Errorf("label attribute %s duplicated in structured metadata", label)
		}
	}
	if len(got) != len(wantMeta) {
		t.Errorf("metadata has %d entries, want %d: %v", len(got), len(wantMeta), got)
	}

	var line map[string]any
	if err := json.Unmarshal([]byte(e.Line), &line); err != nil {
		t.Fatalf("line is not JSON: %v: %s", err, e.Line)
	}
	wantLine := map[string]any{
		"message": "Davao → Manila on Globe 5g degraded", "service": "bantay", "event.kind": "path_degraded",
		"src_city": "Davao", "carrier": "Globe", "island_group": "Luzon", "probe": "dvo-01", "dst_city": "Manila",
		"network_type": "5g", "p95_before_ms": 21.5, "p95_after_ms": 187.0, "loss_ratio": 0.04, "count": 3.0,
		"weird": "NaN", "trace_id": "0102030405060708090a0b0c0d0e0f10", "span_id": "0102030405060708", "level": "warn",
	}
	for k, v := range wantLine {
		if line[k] != v {
			t.Errorf("line[%s] = %#v, want %#v", k, line[k], v)
		}
	}
	if len(line) != len(wantLine) {
		t.Errorf("line has %d fields, want %d: %s", len(line), len(wantLine), e.Line)
	}
}

func TestConvertGroupsStreamsAndOrdersEntries(t *testing.T) {
	ld, lrs := newLogs()
	// Interleaved and out of order across two streams and two resources.
	event(lrs, t0.Add(3*time.Second), "probe_failure", "mnl-01", "Manila", "Globe", "third")
	event(lrs, t0.Add(1*time.Second), "probe_failure", "mnl-02", "Manila", "Globe", "first")
	event(lrs, t0.Add(2*time.Second), "probe_failure", "mnl-03", "Manila", "Smart", "smart")
	lrs2 := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	event(lrs2, t0.Add(2*time.Second), "probe_failure", "mnl-01", "Manila", "Globe", "second")
	// Same timestamp: arrival order is kept.
	event(lrs2, t0.Add(3*time.Second), "probe_failure", "mnl-01", "Manila", "Globe", "fourth")

	streams := newConverter(defaultLabels(), nil).convert(ld, t0)
	if len(streams) != 2 {
		t.Fatalf("got %d streams, want 2 (Globe, Smart)", len(streams))
	}
	if !strings.Contains(streams[0].Labels, `carrier="Globe"`) || !strings.Contains(streams[1].Labels, `carrier="Smart"`) {
		t.Fatalf("streams not ordered by labels: %s / %s", streams[0].Labels, streams[1].Labels)
	}
	var msgs []string
	for _, e := range streams[0].Entries {
		var line map[string]any
		_ = json.Unmarshal([]byte(e.Line), &line)
		msgs = append(msgs, line["message"].(string))
	}
	if got := strings.Join(msgs, ","); got != "first,second,third,fourth" {
		t.Errorf("entry order %s", got)
	}
	// The probe is high-cardinality: it must not split streams.
	for _, s := range streams {
		if strings.Contains(s.Labels, "probe=") {
			t.Errorf("probe leaked into labels: %s", s.Labels)
		}
	}
}

func TestConvertFallbacksAndBadValues(t *testing.T) {
	var refused []string
	c := newConverter(defaultLabels(), func(label, reason string) { refused = append(refused, label+"/"+reason) })

	ld, lrs := newLogs()
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr("carrier", "DITO")
	// No record attributes at all, no timestamps: the resource supplies the
	// carrier label and the conversion time the timestamp.
	lr := lrs.AppendEmpty()
	lr.Body().SetStr("rules reloaded")
	// A record with only bad label values falls back to Loki's own label.
	bad := lrs.AppendEmpty()
	bad.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Minute)))
	bad.Attributes().PutStr("carrier", strings.Repeat("x", maxLabelValueLen+1))
	bad.Attributes().PutStr("src_city", "Ma\xffnila")
	bad.Attributes().PutStr("service", "")

	streams := c.convert(ld, t0)
	if len(streams) != 2 {
		t.Fatalf("got %d streams: %+v", len(streams), streams)
	}
	if streams[0].Labels != `{carrier="DITO"}` || !streams[0].Entries[0].Timestamp.Equal(t0) {
		t.Errorf("resource fallback: %s at %s", streams[0].Labels, streams[0].Entries[0].Timestamp)
	}
	if streams[1].Labels != `{service_name="unknown_service"}` {
		t.Errorf("no-label fallback: %s", streams[1].Labels)
	}
	if !streams[1].Entries[0].Timestamp.Equal(t0.Add(time.Minute)) {
		t.Errorf("observed timestamp not used: %s", streams[1].Entries[0].Timestamp)
	}
	if got := strings.Join(refused, ","); got != "src_city/invalid_utf8,carrier/too_long" {
		t.Errorf("refused label values: %s", got)
	}
	// Refused values are kept, as valid UTF-8, in metadata.
	m := metaMap(streams[1].Entries[0])
	if m["src_city"] != "Ma\uFFFDnila" || len(m["carrier"]) != maxLabelValueLen+1 {
		t.Errorf("refused values not kept in metadata: %q", m["src_city"])
	}
}

func TestConvertCustomLabels(t *testing.T) {
	ld, lrs := newLogs()
	lr := event(lrs, t0, "probe_failure", "mnl-01", "Manila", "Globe", "x")
	lr.Attributes().PutStr("net.type", "fiber")
	labels := []LabelConfig{{Attribute: "event.kind"}, {Attribute: "net.type", Label: "nt"}}
	s := newConverter(labels, nil).convert(ld, t0)[0]
	if s.Labels != `{event_kind="probe_failure", nt="fiber"}` {
		t.Errorf("labels %s", s.Labels)
	}
	m := metaMap(s.Entries[0])
	if m["src_city"] != "Manila" || m["carrier"] != "Globe" {
		t.Errorf("non-label attributes missing from metadata: %v", m)
	}
	if _, ok := m["net_type"]; ok {
		t.Error("label attribute also in metadata")
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"event.kind": "event_kind", "p95_before_ms": "p95_before_ms", "9lives": "_9lives",
		"http.status-code": "http_status_code", "": "_", "lugar·ñ": "lugar__",
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkConvert(b *testing.B) {
	ld, lrs := newLogs()
	for i := range 1000 {
		lr := event(lrs, t0.Add(time.Duration(i)*time.Millisecond), "probe_failure", "mnl-01", "Manila", "Globe", "connect timeout")
		lr.Attributes().PutStr("target", "203.0.113.7:443")
		lr.Attributes().PutStr("reason", "timeout")
	}
	c := newConverter(defaultLabels(), nil)
	b.ReportAllocs()
	for b.Loop() {
		c.convert(ld, t0)
	}
}
