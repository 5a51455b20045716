package events

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// ScopeName is the instrumentation scope of the log records ToLogs builds.
const ScopeName = "github.com/bantay-noc/bantay/internal/events"

// ToLogs converts events into one plog.Logs (one resource, one scope, one
// record per event, in the given order) in the record format of the loki
// exporter (docs/loki.md): attributes service="bantay", event.kind, the
// typed fields that are set, and Attrs; the body is the human sentence; the
// timestamp is when it happened and the observed timestamp is now.
func ToLogs(evs []Event) plog.Logs {
	ld := plog.NewLogs()
	if len(evs) == 0 {
		return ld
	}
	// No resource attributes: the loki exporter would copy them into
	// every entry's metadata, and the record format has none.
	rl := ld.ResourceLogs().AppendEmpty()
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(ScopeName)
	lrs := sl.LogRecords()
	lrs.EnsureCapacity(len(evs))
	observed := pcommon.NewTimestampFromTime(time.Now())
	for i := range evs {
		AppendRecord(lrs, &evs[i], observed)
	}
	return ld
}

// AppendRecord appends e as one log record to lrs (see ToLogs).
func AppendRecord(lrs plog.LogRecordSlice, e *Event, observed pcommon.Timestamp) {
	lr := lrs.AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(e.Time))
	lr.SetObservedTimestamp(observed)
	lr.Body().SetStr(e.Body)
	if !e.TraceID.IsEmpty() {
		lr.SetTraceID(e.TraceID)
	}
	switch e.Severity {
	case SeverityInfo:
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
	case SeverityWarn:
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
	case SeverityError:
		lr.SetSeverityNumber(plog.SeverityNumberError)
	}
	lr.SetSeverityText(e.Severity.String())
	a := lr.Attributes()
	a.EnsureCapacity(4 + len(e.Attrs) + 9)
	a.PutStr(AttrService, ServiceName)
	a.PutStr(AttrKind, string(e.Kind))
	for _, f := range [...]struct{ name, value string }{
		{AttrSrcCity, e.SrcCity},
		{AttrCarrier, e.Carrier},
		{AttrIslandGroup, e.IslandGroup},
		{AttrProbe, e.Probe},
		{AttrDstCity, e.DstCity},
		{AttrNetworkType, e.NetworkType},
		{AttrTarget, e.Target},
		{AttrReason, e.Reason},
		{AttrError, e.Error},
	} {
		if f.value != "" {
			a.PutStr(f.name, f.value)
		}
	}
	for k, v := range e.Attrs {
		putAttr(a, k, v)
	}
}

// putAttr stores v under k with the pcommon type that keeps it a number
// (JSON number in the line) where it is one.
func putAttr(a pcommon.Map, k string, v any) {
	switch v := v.(type) {
	case string:
		a.PutStr(k, v)
	case bool:
		a.PutBool(k, v)
	case int:
		a.PutInt(k, int64(v))
	case int64:
		a.PutInt(k, v)
	case uint64:
		if v > math.MaxInt64 {
			a.PutDouble(k, float64(v))
		} else {
			a.PutInt(k, int64(v))
		}
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		a.PutDouble(k, v)
	case time.Duration:
		a.PutStr(k, v.String())
	case time.Time:
		a.PutStr(k, v.UTC().Format(time.RFC3339Nano))
	case nil:
	default:
		a.PutStr(k, fmt.Sprint(v))
	}
}
