package lokiexporter

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/promql/parser"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// FuzzConvert feeds arbitrary attribute names, values and bodies (what any
// event producer, or a probe through one, could put in a record) through
// the conversion and checks that Loki could take the result: a label
// string its parser reads back to the same values, a JSON line, and a
// protobuf that round-trips.
func FuzzConvert(f *testing.F) {
	f.Add("Davao", "target", "203.0.113.7:443", "timeout")
	f.Add(`Ma"nila\`, "event.kind", "x", "")
	f.Add("São Carlos\u2028", "p95.ms", "\xff\xfe", "{\"message\":1}")
	f.Add("", "", "", "\x00")
	f.Fuzz(func(t *testing.T, city, key, value, body string) {
		ld, lrs := newLogs()
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		lr.Body().SetStr(body)
		lr.Attributes().PutStr("service", "bantay")
		lr.Attributes().PutStr("src_city", city)
		lr.Attributes().PutStr(key, value)

		streams := newConverter(defaultLabels(), nil).convert(ld, t0)
		if len(streams) != 1 || len(streams[0].Entries) != 1 {
			t.Fatalf("one record gave %d streams", len(streams))
		}
		s := streams[0]

		lbls, err := parser.NewParser(parser.Options{}).ParseMetric(s.Labels)
		if err != nil {
			t.Fatalf("labels %q do not parse: %v", s.Labels, err)
		}
		// The record's own attribute wins over the earlier PutStr when the
		// fuzzer picks key "src_city".
		wantCity := city
		if key == "src_city" {
			wantCity = value
		}
		if wantCity != "" && utf8.ValidString(wantCity) && len(wantCity) <= maxLabelValueLen {
			if got := lbls.Get("src_city"); got != wantCity {
				t.Fatalf("src_city label %q, want %q (labels %s)", got, wantCity, s.Labels)
			}
		} else if lbls.Has("src_city") {
			t.Fatalf("unusable value %q became a label", wantCity)
		}

		e := s.Entries[0]
		var line map[string]any
		if err := json.Unmarshal([]byte(e.Line), &line); err != nil {
			t.Fatalf("line %q is not JSON: %v", e.Line, err)
		}
		// encoding/json replaces invalid UTF-8 byte by byte; valid text
		// must come through unchanged.
		if msg, _ := line[messageKey].(string); utf8.ValidString(body) && msg != body {
			t.Fatalf("message %q, want %q", msg, body)
		}
		for _, m := range e.StructuredMetadata {
			if !labelNameRE.MatchString(m.Name) || !utf8.ValidString(m.Value) {
				t.Fatalf("metadata %q=%q not acceptable to Loki", m.Name, m.Value)
			}
		}

		req := push.PushRequest{Streams: streams}
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back push.PushRequest
		if err := back.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		if back.Streams[0].Labels != s.Labels || back.Streams[0].Entries[0].Line != e.Line ||
			len(back.Streams[0].Entries[0].StructuredMetadata) != len(e.StructuredMetadata) {
			t.Fatal("protobuf round trip changed the push")
		}
	})
}
