// Package metricmodel is the metric contract of docs/metric-model.md in one
// place: the OTel names and units the probes record, the attribute and
// label names on the wire and in the store, the latency bucket bounds, the
// failure reasons, the shape of probe ids and names, and the limits derived
// from them. The probe and every collector component import it, so the two
// ends cannot drift apart. It depends on the standard library only (the
// probe does not link the collector); pmetricwalk walks pipeline data.
package metricmodel

import (
	"fmt"
	"regexp"
)

// ScopeName is the instrumentation scope of every metric a probe sends.
const ScopeName = "github.com/bantay-noc/bantay/probes"

// The OTel metrics a probe records.
const (
	Latency     = "network.latency"           // histogram, answered probes (and http phases, with AttrPhase)
	Attempts    = "bantay.probe.attempts"     // counter, every probe
	Failures    = "bantay.probe.failures"     // counter by reason
	Duplicates  = "bantay.probe.duplicates"   // counter, replies to a probe already answered
	Reordered   = "bantay.probe.reordered"    // counter, replies after a later probe's reply
	Jitter      = "bantay.probe.jitter"       // counter, ms: Σ|ΔRTT| of consecutive answers of a round
	JitterPairs = "bantay.probe.jitter.pairs" // counter: the pairs summed in Jitter
	HTTPStatus  = "bantay.probe.http.status_code"
	CertExpiry  = "bantay.probe.tls.cert_expiry" // gauge, Unix s
	// The probe's own health, per uplink.
	Lateness       = "bantay.probe.schedule.lateness" // histogram, s
	RoundsInFlight = "bantay.probe.rounds.in_flight"  // up-down counter
	ProcessCPU     = "process.cpu.time"               // counter, s (OTel semantic conventions)
	ProcessMemory  = "process.memory.usage"           // gauge, bytes (OTel semantic conventions)

	LatencyUnit  = "ms"
	AttemptsUnit = "{attempt}"
	FailuresUnit = "{failure}"
	ReplyUnit    = "{reply}"
	JitterUnit   = "ms"
	PairUnit     = "{pair}"
	SecondsUnit  = "s"
	RoundUnit    = "{round}"
	BytesUnit    = "By"
)

// LatencyNative is the same measurements as Latency in a base-2
// exponential histogram (probe setting histograms: exponential or both),
// stored as the Prometheus native histogram network_latency_native_milliseconds.
// It needs a name of its own: the OTel SDK folds two views of one name on
// one instrument into one stream, and the probe's /metrics registry refuses
// two histograms of one name (docs/decisions.md).
const LatencyNative = "network.latency.native"

// LatencyNativeMaxBuckets bounds the buckets of LatencyNative (the SDK's
// MaxSize): 160 hold 0.1 ms to 60 s at scale 3 (each bucket 9% wide), and a
// path whose latencies span less gets a finer scale.
const LatencyNativeMaxBuckets = 160

// IsLatency says whether an OTel metric name is path latency, in either
// histogram form.
func IsLatency(name string) bool { return name == Latency || name == LatencyNative }

// LatenessBounds (s) of bantay.probe.schedule.lateness: a healthy probe
// starts runs within a millisecond; tens of milliseconds mean a busy CPU,
// a second or more a probe that cannot keep its schedule. Read-only.
var LatenessBounds = []float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5}

// Resource attributes a probe sets on each uplink's resource.
const (
	ResourceServiceName   = "service.name"
	ResourceProbeID       = "service.instance.id"
	ResourceDeclaredCity  = "bantay.probe.city"
	ResourceCarrier       = "bantay.uplink.carrier"
	ResourceNetworkType   = "bantay.uplink.network_type"
	ServiceName           = "bantay-probe" // the value of service.name
	ResourceEnvironment   = "deployment.environment.name"
	ResourceEnvironmentV0 = "deployment.environment" // the older key, accepted too
)

// Point attributes a probe sets.
const (
	AttrTarget  = "target"
	AttrDstCity = "dst_city"
	AttrMethod  = "method"
	AttrReason  = "reason"
	// AttrPhase is the attribute of an http phase's latency point. The
	// total has none, so a consumer of path latency skips every point
	// that has one (docs/metric-model.md).
	AttrPhase = "phase"
)

// Labels citytag sets on every point (and so on every stored series).
const (
	LabelSrcCity        = "src_city"
	LabelRegion         = "region"
	LabelIslandGroup    = "island_group"
	LabelDstCity        = AttrDstCity
	LabelDstRegion      = "dst_region"
	LabelDstIslandGroup = "dst_island_group"
	LabelCarrier        = "carrier"
	LabelNetworkType    = "network_type"
	LabelProbe          = "probe"
)

// CanonicalLabels are citytag's labels, in the order docs/metric-model.md lists them.
var CanonicalLabels = []string{LabelSrcCity, LabelRegion, LabelIslandGroup, LabelDstCity, LabelDstRegion,
	LabelDstIslandGroup, LabelCarrier, LabelNetworkType, LabelProbe}

// LatencyBounds are the explicit histogram bounds in milliseconds: sub-ms
// for LAN targets, dense from 1 to 200 ms where Philippine domestic paths
// live, then coarse up to the longest timeout anyone should configure
// (docs/decisions.md, "Latency bucket bounds"). Read-only.
var LatencyBounds = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 2000, 5000}

// FailureReasons are the values of bantay.probe.failures' reason attribute.
// A probe exports every one of them at 0 from its first export.
var FailureReasons = []string{"timeout", "refused", "dns", "tls", "http_status", "other"}

// RoundCounters are the counters every round adds per target, exported at
// 0 from the start like attempts and failures.
var RoundCounters = []string{Duplicates, Reordered, Jitter, JitterPairs}

// SeriesPerTarget is what one probe target (not http: its phases add
// histograms) costs the store on one uplink: the latency histogram's
// buckets (one per bound and +Inf), _sum and _count; attempts; one failure
// counter per reason; the round counters.
var SeriesPerTarget = len(LatencyBounds) + 1 + 2 + 1 + len(FailureReasons) + len(RoundCounters)

// PointAttributes is the most attributes a probe's point carries after
// citytag has tagged it: a failure counter's target, method and reason,
// and the canonical labels (dst_city among them).
var PointAttributes = 3 + len(CanonicalLabels)

// MaxProbeIDLength bounds a probe id so that it fits in a UDP echo packet
// and in a label value every store accepts.
const MaxProbeIDLength = 63

// MaxNameLength bounds uplink and target names (they become label values;
// citytag's max_attribute_value_length may not be set below it).
const MaxNameLength = 128

var (
	probeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	namePattern    = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// CheckProbeID says why id cannot be a probe id, or nil. The probe checks
// its own id with it and citytag its registry, so an id one accepts the
// other accepts.
func CheckProbeID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("a probe id is required")
	case len(id) > MaxProbeIDLength:
		return fmt.Errorf("probe id %q is longer than %d characters", id, MaxProbeIDLength)
	case !probeIDPattern.MatchString(id):
		return fmt.Errorf("probe id %q must start with a letter or digit and contain only letters, digits, '.', '_' and '-'", id)
	}
	return nil
}

// CheckName says why name cannot name an uplink or a target, or nil.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a name is required")
	case len(name) > MaxNameLength:
		return fmt.Errorf("name %q is longer than %d characters", name, MaxNameLength)
	case !namePattern.MatchString(name):
		return fmt.Errorf("name %q may contain only letters, digits, '.', '_' and '-'", name)
	}
	return nil
}
