package events

import (
	"fmt"
	"time"
)

// Attribute names of the collector's own events.
const (
	AttrPoints       = "points"
	AttrGroups       = "groups"
	AttrRules        = "rules"
	AttrRequests     = "requests"
	AttrPeer         = "peer"
	AttrClaimedProbe = "claimed_probe"
	// AttrClockSkewSeconds is how far a probe's newest point was ahead of
	// the collector's clock (negative: behind).
	AttrClockSkewSeconds = "clock_skew_seconds"
)

// ProbeRejected is the event for data the collector refused from a probe
// (citytag: unknown probe, uplink not registered, unknown dst_city,
// impossible values; or a bad credential). reason is the same short,
// bounded reason the refusal is counted under
// (bantay_citytag_rejected_points{reason}); detail says what exactly
// was wrong; points is how many points were refused. Publish it as often as
// the refusal is logged (once per reason and probe per minute), not per
// point. Set SrcCity/Carrier/IslandGroup on the result when the probe is
// known, so the event lands in that city's stream.
func ProbeRejected(t time.Time, probe, reason, detail string, points int) Event {
	who := probe
	if who == "" {
		who = "an unidentified probe"
	}
	body := fmt.Sprintf("data from %s rejected (%s)", who, reason)
	if points > 0 {
		body = fmt.Sprintf("%d points from %s rejected (%s)", points, who, reason)
	}
	if detail != "" {
		body += ": " + detail
	}
	e := Event{
		Kind:     KindProbeRejected,
		Time:     t,
		Severity: SeverityWarn,
		Body:     body,
		Probe:    probe,
		Reason:   reason,
		Error:    detail,
	}
	if points > 0 {
		e.Attrs = map[string]any{AttrPoints: points}
	}
	return e
}

// ProbeWarning is the event for something wrong with data the collector
// still stored from a probe (citytag: the probe's clock is ahead of the
// collector's, clock_skew; the city it declares is not the registry's,
// declared_city_mismatch). reason is short and bounded, detail says what
// exactly. Publish it as often as the warning is logged (once per reason
// and probe uplink per log_interval). Set SrcCity/Carrier/IslandGroup on the
// result, as for ProbeRejected.
func ProbeWarning(t time.Time, probe, reason, detail string) Event {
	body := fmt.Sprintf("data from %s stored with a warning (%s)", probe, reason)
	if detail != "" {
		body += ": " + detail
	}
	return Event{
		Kind:     KindProbeWarning,
		Time:     t,
		Severity: SeverityWarn,
		Body:     body,
		Probe:    probe,
		Reason:   reason,
		Error:    detail,
	}
}

// CredentialRejected is the event for OTLP requests refused for a bad
// credential (the probeauth extension): reason is the bounded reason they are
// counted under (missing, malformed, unknown_token, wrong_token), detail what
// was wrong (never the token), peer the client's address, claimed the probe
// id the request claimed to come from ("" if none), requests how many such
// requests this event stands for.
//
// The claimed id is unauthenticated, so it goes in claimed_probe, not
// probe: probe is the loki exporter's rate-limit key, and an attacker
// naming a real probe must not use up that probe's share of events. The
// event has no src_city / carrier: nothing about the request is trusted.
func CredentialRejected(t time.Time, claimed, peer, reason, detail string, requests int) Event {
	who := "a client"
	if peer != "" {
		who = peer
	}
	if claimed != "" {
		who += " claiming to be " + claimed
	}
	body := fmt.Sprintf("request from %s rejected (%s)", who, reason)
	if requests > 1 {
		body = fmt.Sprintf("%d requests from %s rejected (%s)", requests, who, reason)
	}
	if detail != "" {
		body += ": " + detail
	}
	attrs := map[string]any{AttrRequests: max(requests, 1)}
	if peer != "" {
		attrs[AttrPeer] = peer
	}
	if claimed != "" {
		attrs[AttrClaimedProbe] = claimed
	}
	return Event{
		Kind:     KindProbeRejected,
		Time:     t,
		Severity: SeverityWarn,
		Body:     body,
		Reason:   reason,
		Error:    detail,
		Attrs:    attrs,
	}
}

// RulesReloaded is the event for a (re)load of the alerting and recording
// rules: how many groups and rules are now active, or, when err is not nil,
// why the load failed (the previous rules stay active then).
func RulesReloaded(t time.Time, groups, rules int, err error) Event {
	e := Event{
		Kind:     KindRulesReloaded,
		Time:     t,
		Severity: SeverityInfo,
		Body:     fmt.Sprintf("rules loaded: %d groups, %d rules", groups, rules),
		Attrs:    map[string]any{AttrGroups: groups, AttrRules: rules},
	}
	if err != nil {
		e.Severity = SeverityError
		e.Reason = "load_failed"
		e.Error = err.Error()
		e.Body = "rules reload failed, previous rules stay active: " + err.Error()
		e.Attrs = nil
	}
	return e
}
