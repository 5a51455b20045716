package lokiexporter

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

const (
	// maxLabelValueLen is below Loki's default max_label_value_length
	// (2048): a longer value is a sign of a mis-mapped attribute, and Loki
	// would reject the whole push for it.
	maxLabelValueLen = 1024

	// fallbackLabel is what a record with none of the allow-listed
	// attributes is filed under; Loki refuses streams without labels, and
	// this is the name and value Loki itself uses for such data.
	fallbackLabel      = "service_name"
	fallbackLabelValue = "unknown_service"

	// messageKey is the JSON line field carrying the record body.
	messageKey = "message"
)

// Reasons a label value is refused, for the invalid-label metric.
const (
	reasonTooLong     = "too_long"
	reasonInvalidUTF8 = "invalid_utf8"
)

// converter turns OTLP log records into Loki streams: allow-listed
// attributes become labels, the rest structured metadata, and the line is a
// JSON object with the message and every attribute.
type converter struct {
	labels []LabelConfig
	// labelAttrs is the set of attributes used as labels.
	labelAttrs map[string]bool
	// invalidLabel is told about every refused label value.
	invalidLabel func(label, reason string)
}

func newConverter(labels []LabelConfig, invalidLabel func(label, reason string)) *converter {
	c := &converter{labels: labels, labelAttrs: make(map[string]bool, len(labels)), invalidLabel: invalidLabel}
	for _, l := range labels {
		c.labelAttrs[l.Attribute] = true
	}
	if c.invalidLabel == nil {
		c.invalidLabel = func(string, string) {}
	}
	return c
}

// convert groups the records of ld into streams by label set, ordered by
// label string, with each stream's entries in time order. Loki accepts
// out-of-order writes nowadays, but ordered entries compress better and
// keep older Loki versions (and stricter stores) happy.
func (c *converter) convert(ld plog.Logs, now time.Time) []push.Stream {
	byLabels := map[string]*push.Stream{}
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				labels, entry := c.entry(res, lrs.At(k), now)
				s, ok := byLabels[labels]
				if !ok {
					s = &push.Stream{Labels: labels}
					byLabels[labels] = s
				}
				s.Entries = append(s.Entries, entry)
			}
		}
	}
	streams := make([]push.Stream, 0, len(byLabels))
	for _, s := range byLabels {
		slices.SortStableFunc(s.Entries, func(a, b push.Entry) int { return a.Timestamp.Compare(b.Timestamp) })
		streams = append(streams, *s)
	}
	slices.SortFunc(streams, func(a, b push.Stream) int { return cmp.Compare(a.Labels, b.Labels) })
	return streams
}

// lookup finds an attribute on the record first, then on its resource.
func lookup(res, rec pcommon.Map, key string) (pcommon.Value, bool) {
	if v, ok := rec.Get(key); ok {
		return v, true
	}
	return res.Get(key)
}

// entry converts one record and returns its stream's label string too.
func (c *converter) entry(res pcommon.Map, lr plog.LogRecord, now time.Time) (string, push.Entry) {
	rec := lr.Attributes()

	type kv struct{ name, value string }
	labels := make([]kv, 0, len(c.labels))
	usedAttr := make(map[string]bool, len(c.labels))
	for _, l := range c.labels {
		v, ok := lookup(res, rec, l.Attribute)
		if !ok {
			continue
		}
		s := v.AsString()
		if s == "" {
			continue
		}
		name := l.labelName()
		if len(s) > maxLabelValueLen {
			c.invalidLabel(name, reasonTooLong)
			continue
		}
		if !utf8.ValidString(s) {
			c.invalidLabel(name, reasonInvalidUTF8)
			continue
		}
		labels = append(labels, kv{name, s})
		usedAttr[l.Attribute] = true
	}
	if len(labels) == 0 {
		labels = append(labels, kv{fallbackLabel, fallbackLabelValue})
	}
	slices.SortFunc(labels, func(a, b kv) int { return cmp.Compare(a.name, b.name) })
	var sb strings.Builder
	sb.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(l.name)
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(l.value))
	}
	sb.WriteByte('}')

	// The line and the metadata carry every attribute; resource
	// attributes first so that the record's own win on a name clash.
	line := map[string]any{}
	meta := map[string]string{}
	add := func(k string, v pcommon.Value) bool {
		line[k] = jsonValue(v)
		if !usedAttr[k] {
			// Loki refuses invalid UTF-8 in the protobuf strings.
			meta[sanitizeName(k)] = strings.ToValidUTF8(v.AsString(), "\uFFFD")
		}
		return true
	}
	res.Range(add)
	rec.Range(add)
	if tid := lr.TraceID(); !tid.IsEmpty() {
		line["trace_id"] = tid.String()
		meta["trace_id"] = tid.String()
	}
	if sid := lr.SpanID(); !sid.IsEmpty() {
		line["span_id"] = sid.String()
		meta["span_id"] = sid.String()
	}
	if lvl := level(lr); lvl != "" {
		line["level"] = lvl
		meta["level"] = lvl
	}
	// The body is the human message; it wins over an attribute of the
	// same name.
	line[messageKey] = lr.Body().AsString()

	// encoding/json sorts map keys, so equal records give equal lines
	// (which lets Loki drop a retried duplicate).
	raw, err := json.Marshal(line)
	if err != nil {
		// jsonValue only produces marshalable values; this is a bug
		// guard, not an expected path.
		raw = []byte(strconv.Quote(lr.Body().AsString()))
	}

	sm := make(push.LabelsAdapter, 0, len(meta))
	for k, v := range meta {
		sm = append(sm, push.LabelAdapter{Name: k, Value: v})
	}
	slices.SortFunc(sm, func(a, b push.LabelAdapter) int { return cmp.Compare(a.Name, b.Name) })

	return sb.String(), push.Entry{
		Timestamp:          timestamp(lr, now),
		Line:               string(raw),
		StructuredMetadata: sm,
	}
}

func timestamp(lr plog.LogRecord, now time.Time) time.Time {
	if ts := lr.Timestamp(); ts != 0 {
		return ts.AsTime()
	}
	if ts := lr.ObservedTimestamp(); ts != 0 {
		return ts.AsTime()
	}
	return now
}

// level is the record's severity in the lower-case words Grafana colours
// log lines by.
func level(lr plog.LogRecord) string {
	if t := lr.SeverityText(); t != "" {
		return strings.ToLower(t)
	}
	n := lr.SeverityNumber()
	switch {
	case n == plog.SeverityNumberUnspecified:
		return ""
	case n < plog.SeverityNumberDebug:
		return "trace"
	case n < plog.SeverityNumberInfo:
		return "debug"
	case n < plog.SeverityNumberWarn:
		return "info"
	case n < plog.SeverityNumberError:
		return "warn"
	case n < plog.SeverityNumberFatal:
		return "error"
	default:
		return "fatal"
	}
}

// jsonValue is v as a value encoding/json can always marshal: NaN and
// infinities, which JSON cannot express, become strings.
func jsonValue(v pcommon.Value) any {
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return v.AsString()
		}
		return f
	case pcommon.ValueTypeInt:
		return v.Int()
	case pcommon.ValueTypeBool:
		return v.Bool()
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeMap:
		m := map[string]any{}
		v.Map().Range(func(k string, e pcommon.Value) bool {
			m[k] = jsonValue(e)
			return true
		})
		return m
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		out := make([]any, s.Len())
		for i := range out {
			out[i] = jsonValue(s.At(i))
		}
		return out
	default:
		// Bytes (base64) and empty values.
		return v.AsString()
	}
}

// sanitizeName maps an attribute name to a Loki label / structured
// metadata name: every character outside [a-zA-Z0-9_] becomes '_', and a
// leading digit gets a '_' prefix (event.kind → event_kind).
func sanitizeName(s string) string {
	if s == "" {
		return "_"
	}
	var sb strings.Builder
	if s[0] >= '0' && s[0] <= '9' {
		sb.WriteByte('_')
	}
	for _, r := range s {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}
