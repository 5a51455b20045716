package events

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

func TestToLogsRecordFormat(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	ld := ToLogs([]Event{{
		Kind: KindProbeFailure, Time: at, Severity: SeverityWarn, Body: "dvo-01: 5 timeouts",
		SrcCity: "Davao", Carrier: "Globe", IslandGroup: "Mindanao",
		Probe: "dvo-01", DstCity: "Manila", NetworkType: "5g", Target: "203.0.113.7:443", Reason: "timeout",
		TraceID: pcommon.TraceID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Attrs: map[string]any{
			AttrCount: 5, "nan": math.NaN(), "ratio": 0.25, "big": uint64(7), "ok": true,
			"since": at, "for": 90 * time.Second,
		},
	}, {Kind: KindRulesReloaded, Time: at.Add(time.Second), Severity: SeverityInfo, Body: "rules"}})

	if n := ld.ResourceLogs().Len(); n != 1 {
		t.Fatalf("%d resources", n)
	}
	rl := ld.ResourceLogs().At(0)
	if rl.Resource().Attributes().Len() != 0 {
		t.Errorf("resource attributes %v would end up in every entry's metadata", rl.Resource().Attributes().AsRaw())
	}
	sl := rl.ScopeLogs().At(0)
	if sl.Scope().Name() != ScopeName || sl.LogRecords().Len() != 2 {
		t.Fatalf("scope %q with %d records", sl.Scope().Name(), sl.LogRecords().Len())
	}
	lr := sl.LogRecords().At(0)
	if !lr.Timestamp().AsTime().Equal(at) || lr.ObservedTimestamp() == 0 {
		t.Errorf("timestamp %v observed %v", lr.Timestamp().AsTime(), lr.ObservedTimestamp())
	}
	if lr.Body().Str() != "dvo-01: 5 timeouts" || lr.SeverityNumber() != plog.SeverityNumberWarn || lr.SeverityText() != "warn" {
		t.Errorf("body %q severity %v %q", lr.Body().Str(), lr.SeverityNumber(), lr.SeverityText())
	}
	want := map[string]any{
		"service": "bantay", "event.kind": "probe_failure", "src_city": "Davao", "carrier": "Globe",
		"island_group": "Mindanao", "probe": "dvo-01", "dst_city": "Manila", "network_type": "5g",
		"target": "203.0.113.7:443", "reason": "timeout", "count": int64(5), "ratio": 0.25,
		"big": int64(7), "ok": true, "since": "2026-11-25T02:00:00Z", "for": "1m30s",
	}
	got := lr.Attributes().AsRaw()
	if len(got) != len(want) {
		t.Errorf("attributes %v, want %v (NaN and empty fields left out)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %#v, want %#v", k, got[k], v)
		}
	}
	if v, _ := lr.Attributes().Get("count"); v.Type() != pcommon.ValueTypeInt {
		t.Errorf("count has type %v, want int (a JSON number in the line)", v.Type())
	}
	// The failure's trace id is the record's, where the loki exporter
	// takes it from for the line and the metadata.
	if got := lr.TraceID().String(); got != "deadbeef0102030405060708090a0b0c" {
		t.Errorf("trace id %q, want the event's", got)
	}
	if !sl.LogRecords().At(1).TraceID().IsEmpty() {
		t.Error("an event without a trace id got one")
	}
	if v, ok := sl.LogRecords().At(1).Attributes().Get("src_city"); ok {
		t.Errorf("empty src_city was set (%q): it would make an empty label", v.Str())
	}
	if ToLogs(nil).ResourceLogs().Len() != 0 {
		t.Error("no events must give no resources")
	}
}

func TestFromHeatmap(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	cell := pathstate.CellKey{SrcCity: "Davao", DstCity: "Manila", Carrier: "Globe", NetworkType: "5g"}
	for _, tc := range []struct {
		in       pathstate.Event
		kind     Kind
		sev      Severity
		body     string
		numbers  bool
		lastSeen bool
	}{
		{pathstate.Event{Kind: pathstate.Degraded, Time: at, Cell: cell, Reason: "latency", Window: 5 * time.Minute,
			P95Before: 21.54, P95After: 187, Loss: 0.04, Samples: 120},
			KindPathDegraded, SeverityWarn, "Davao → Manila on Globe 5g degraded (latency): p95 21.5 → 187 ms over 5m, loss 4%", true, false},
		{pathstate.Event{Kind: pathstate.Recovered, Time: at, Cell: cell, Reason: "back near baseline", Window: 5 * time.Minute,
			P95Before: 21.5, P95After: 23, Loss: math.NaN(), Samples: 120},
			KindPathRecovered, SeverityInfo, "Davao → Manila on Globe 5g recovered: p95 23 ms over 5m (baseline 21.5 ms), loss n/a", true, false},
		{pathstate.Event{Kind: pathstate.Stale, Time: at, Cell: cell, Reason: "no data for 45s", LastSeen: at.Add(-45 * time.Second)},
			KindPathStale, SeverityWarn, "Davao → Manila on Globe 5g stale: no data for 45s (last data 01:59:15 UTC)", false, true},
		{pathstate.Event{Kind: pathstate.Back, Time: at, Cell: cell, Reason: "data again", LastSeen: at},
			KindPathBack, SeverityInfo, "Davao → Manila on Globe 5g back: data again after being stale", false, true},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			e, ok := FromHeatmap(tc.in, nil)
			if !ok {
				t.Fatal("not converted")
			}
			if e.Kind != tc.kind || e.Severity != tc.sev || e.Body != tc.body {
				t.Errorf("got %s/%v %q\nwant %s/%v %q", e.Kind, e.Severity, e.Body, tc.kind, tc.sev, tc.body)
			}
			if e.SrcCity != "Davao" || e.IslandGroup != "Mindanao" || e.Carrier != "Globe" || e.DstCity != "Manila" ||
				e.NetworkType != "5g" || e.Probe != "" || !e.Time.Equal(at) || e.Reason != tc.in.Reason {
				t.Errorf("fields %+v", e)
			}
			if e.Attrs[AttrDstIslandGroup] != "Luzon" {
				t.Errorf("dst_island_group %v", e.Attrs[AttrDstIslandGroup])
			}
			_, hasP95 := e.Attrs[AttrP95After]
			if hasP95 != tc.numbers {
				t.Errorf("p95 present %v, want %v", hasP95, tc.numbers)
			}
			if tc.numbers && (e.Attrs[AttrP95Before] != tc.in.P95Before || e.Attrs[AttrWindow] != "5m") {
				t.Errorf("numbers %v", e.Attrs)
			}
			if _, ok := e.Attrs[AttrLastSeen]; ok != tc.lastSeen {
				t.Errorf("last_seen present %v, want %v", ok, tc.lastSeen)
			}
		})
	}
	if _, ok := FromHeatmap(pathstate.Event{Kind: "exploded"}, nil); ok {
		t.Error("unknown heatmap kind converted")
	}
	// A city outside the gazetteer leaves the island group empty rather
	// than guessing.
	e, _ := FromHeatmap(pathstate.Event{Kind: pathstate.Back, Cell: pathstate.CellKey{SrcCity: "Atlantis", DstCity: "Manila", Carrier: "Globe", NetworkType: "5g"}}, nil)
	if e.IslandGroup != "" {
		t.Errorf("island group %q for an unknown city", e.IslandGroup)
	}
}

func TestCollectorEvents(t *testing.T) {
	at := time.Unix(0, 0)
	e := ProbeRejected(at, "x-01", "unknown_dst_city", `dst_city "Atlantis" is not in the gazetteer`, 12)
	if e.Kind != KindProbeRejected || e.Probe != "x-01" || e.Reason != "unknown_dst_city" || e.Attrs[AttrPoints] != 12 ||
		e.Body != `12 points from x-01 rejected (unknown_dst_city): dst_city "Atlantis" is not in the gazetteer` {
		t.Errorf("%+v", e)
	}
	if e := ProbeRejected(at, "", "bad_credential", "", 0); e.Body != "data from an unidentified probe rejected (bad_credential)" || e.Attrs != nil {
		t.Errorf("%+v", e)
	}
	e = CredentialRejected(at, "mnl-01", "203.0.113.9", "wrong_token", "bearer token is not mnl-01's", 3)
	if e.Kind != KindProbeRejected || e.Probe != "" || e.Severity != SeverityWarn || e.Reason != "wrong_token" ||
		e.Attrs[AttrClaimedProbe] != "mnl-01" || e.Attrs[AttrPeer] != "203.0.113.9" || e.Attrs[AttrRequests] != 3 ||
		e.Body != "3 requests from 203.0.113.9 claiming to be mnl-01 rejected (wrong_token): bearer token is not mnl-01's" {
		t.Errorf("%+v", e)
	}
	if e := CredentialRejected(at, "", "", "missing", "", 1); e.Body != "request from a client rejected (missing)" ||
		len(e.Attrs) != 1 || e.Attrs[AttrRequests] != 1 {
		t.Errorf("%+v", e)
	}
	if e := RulesReloaded(at, 3, 17, nil); e.Severity != SeverityInfo || e.Attrs[AttrRules] != 17 || e.Body != "rules loaded: 3 groups, 17 rules" {
		t.Errorf("%+v", e)
	}
	e = RulesReloaded(at, 0, 0, errors.New("bantay-alerts.yml: parse error"))
	if e.Severity != SeverityError || e.Error == "" || !strings.Contains(e.Body, "previous rules stay active") {
		t.Errorf("%+v", e)
	}
}
