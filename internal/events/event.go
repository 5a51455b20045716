// Package events is Bantay's in-process event model: the Event type every
// event source fills (probe failure bursts, heatmap path state changes, the
// collector's own notable events), a small non-blocking publish/subscribe
// Bus for sources inside the collector, and ToLogs, which turns events into
// OTLP log records in exactly the shape the loki exporter expects
// (docs/loki.md, docs/events.md).
package events

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Kind is an event kind; it becomes the Loki label `kind` (attribute
// `event.kind`), so the set of kinds must stay small and fixed.
type Kind string

// The event kinds Bantay produces (docs/events.md).
const (
	// KindProbeFailure is one burst of failures of one probe stream.
	KindProbeFailure Kind = "probe_failure"
	// KindPathDegraded: a path's p95 or loss rose well above its baseline.
	KindPathDegraded Kind = "path_degraded"
	// KindPathRecovered: a degraded path is back near its baseline.
	KindPathRecovered Kind = "path_recovered"
	// KindPathStale: a path stopped receiving data.
	KindPathStale Kind = "path_stale"
	// KindPathBack: a stale path receives data again.
	KindPathBack Kind = "path_back"
	// KindProbeRejected: the collector refused a probe's data (unknown
	// probe, unregistered uplink, bad tags, bad credential).
	KindProbeRejected Kind = "probe_rejected"
	// KindProbeWarning: the collector stored a probe's data, but something
	// about it is wrong (its clock is fast, its declared city contradicts
	// the registry).
	KindProbeWarning Kind = "probe_warning"
	// KindRulesReloaded: the alerting/recording rules were (re)loaded.
	KindRulesReloaded Kind = "rules_reloaded"
)

// Severity is an event's level; the loki exporter turns it into the
// structured-metadata field `level` that Grafana colours lines by.
type Severity uint8

// Severities, in increasing order.
const (
	SeverityUnspecified Severity = iota
	SeverityInfo
	SeverityWarn
	SeverityError
)

// String is the lower-case level name ("info", "warn", "error").
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarn:
		return "warn"
	case SeverityError:
		return "error"
	}
	return ""
}

// Event is one thing that happened. The typed fields are the attributes
// every source shares; they are typed so that the bounded ones (the Loki
// labels) cannot be misspelt. Everything else goes in Attrs.
//
// Empty strings are left out of the record, so a source fills only what it
// knows (a rejected unknown probe has no src_city).
type Event struct {
	// Kind becomes the attribute event.kind (Loki label kind).
	Kind Kind
	// Time is when it happened (for a burst: its first failure), not when
	// it was reported.
	Time time.Time
	// Severity becomes the record's severity (metadata level).
	Severity Severity
	// Body is the human sentence a NOC engineer reads.
	Body string

	// Bounded dimensions: Loki stream labels.
	SrcCity     string
	Carrier     string
	IslandGroup string

	// High-cardinality dimensions: Loki structured metadata.
	Probe       string
	DstCity     string
	NetworkType string
	Target      string
	Reason      string
	Error       string
	// TraceID is the trace id of the sample the event is about (a probe
	// failure burst's first failure), the same id as on that sample's
	// exemplar in the store: the record's trace id, so the Loki line and
	// the page's feed carry it (zero: none).
	TraceID pcommon.TraceID

	// Attrs are further attributes by name, e.g. p95_before_ms, count.
	// Values must be string, bool, int, int64, uint64, float64,
	// time.Duration (rendered as text, "1m30s") or time.Time (RFC 3339,
	// UTC); other types are rendered with fmt. NaN and infinite numbers
	// are left out: they carry no information and JSON cannot hold them.
	// Names must not collide with the typed fields' attribute names.
	Attrs map[string]any
}

// Attribute names of the record format (docs/loki.md). Producers that
// build plog records themselves use these too.
const (
	AttrService     = "service"
	AttrKind        = "event.kind"
	AttrSrcCity     = "src_city"
	AttrCarrier     = "carrier"
	AttrIslandGroup = "island_group"
	AttrProbe       = "probe"
	AttrDstCity     = "dst_city"
	AttrNetworkType = "network_type"
	AttrTarget      = "target"
	AttrReason      = "reason"
	AttrError       = "error"
	AttrP95Before   = "p95_before_ms"
	AttrP95After    = "p95_after_ms"
	AttrLoss        = "loss_ratio"
	AttrCount       = "count"
)

// ServiceName is the value of the `service` attribute on every event.
const ServiceName = "bantay"
