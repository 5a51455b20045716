package hub

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/heatmap/wire"
)

// feeder produces cumulative histogram + counter points per cell, the way
// the exporter hands them over.
type feeder struct {
	h      *testHeatmap
	counts map[pathstate.CellKey][]uint64
	sums   map[pathstate.CellKey]float64
	att    map[pathstate.CellKey]float64
}

func newFeeder(h *testHeatmap) *feeder {
	return &feeder{h: h, counts: map[pathstate.CellKey][]uint64{}, sums: map[pathstate.CellKey]float64{}, att: map[pathstate.CellKey]float64{}}
}

// feed records n samples of latency ms for key at time at.
func (f *feeder) feed(key pathstate.CellKey, at time.Time, ms float64, n uint64) {
	c, ok := f.counts[key]
	if !ok {
		c = make([]uint64, len(aggregate.DefaultBounds)+1)
		f.counts[key] = c
	}
	c[slices.IndexFunc(aggregate.DefaultBounds, func(b float64) bool { return ms <= b })] += n
	f.sums[key] += ms * float64(n)
	f.att[key] += float64(n)
	start := t0.Add(-10 * time.Second)
	f.h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte("h" + key.ID()), Cell: key, Start: start, Time: at,
		Bounds: aggregate.DefaultBounds, Counts: slices.Clone(c), Sum: f.sums[key]})
	f.h.Observe(&aggregate.Point{Kind: aggregate.KindAttempts, Stream: []byte("a" + key.ID()), Cell: key, Start: start, Time: at, Value: f.att[key]})
}

func serve(t testing.TB, h *testHeatmap) string {
	t.Helper()
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func wsURL(base, query string) string {
	u := "ws" + strings.TrimPrefix(base, "http") + PathWS
	if query != "" {
		u += "?" + query
	}
	return u
}

func dial(t testing.TB, base, query string, hdr http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 30 * time.Second}
	c, resp, err := d.Dial(wsURL(base, query), hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type wireFrame struct {
	V       int               `json:"v"`
	Type    string            `json:"type"`
	Seq     uint64            `json:"seq"`
	Ref     string            `json:"ref"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Cells   []json.RawMessage `json:"cells"`
	Removed []string          `json:"removed"`
	Bounds  []float64         `json:"bounds"`
	Cities  []struct {
		Name        string   `json:"name"`
		Region      string   `json:"region"`
		IslandGroup string   `json:"island_group"`
		Latitude    *float64 `json:"latitude"`
		Longitude   *float64 `json:"longitude"`
	} `json:"cities"`
	Columns []struct {
		T      int64    `json:"t"`
		Counts []uint64 `json:"counts"`
		Count  uint64   `json:"count"`
		Late   uint32   `json:"late"`
		P50    *float64 `json:"p50"`
	} `json:"columns"`
	Window struct {
		Name     string `json:"name"`
		From, To int64
	} `json:"window"`
	Subscription *struct {
		Carriers     []string `json:"carriers"`
		NetworkTypes []string `json:"network_types"`
		Window       string   `json:"window"`
		Statistic    string   `json:"statistic"`
	} `json:"subscription"`
}

type wireCell struct {
	ID      string   `json:"id"`
	Carrier string   `json:"carrier"`
	P50     *float64 `json:"p50"`
	P90     *float64 `json:"p90"`
	Count   uint64   `json:"count"`
	State   string   `json:"state"`
}

// next reads one frame; the deadline is a failsafe against a hung test,
// not a performance assertion.
func next(t testing.TB, c *websocket.Conn) wireFrame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	mt, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("frame type %d, want text", mt)
	}
	var f wireFrame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame is not valid JSON: %v\n%s", err, data)
	}
	if f.V != wire.ProtocolVersion {
		t.Fatalf("frame version %d: %s", f.V, data)
	}
	return f
}

func cells(t testing.TB, f wireFrame) map[string]wireCell {
	t.Helper()
	out := map[string]wireCell{}
	for _, raw := range f.Cells {
		var c wireCell
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		out[c.ID] = c
	}
	return out
}

var (
	globeMD = pathstate.CellKey{SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"}
	smartCM = pathstate.CellKey{SrcCity: "Cebu", DstCity: "Manila", Carrier: "Smart", NetworkType: "4g"}
	ditoBM  = pathstate.CellKey{SrcCity: "Baguio", DstCity: "Manila", Carrier: "DITO", NetworkType: "4g"}
)

func TestSnapshotThenDeltasWithOnlyChangedCells(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	f.feed(globeMD, t0, 18, 10)
	f.feed(smartCM, t0, 45, 10)
	f.feed(ditoBM, t0, 9, 10)
	h.tick(t0.Add(time.Second))
	base := serve(t, h)
	c := dial(t, base, "", nil)

	snap := next(t, c)
	if snap.Type != "snapshot" || len(snap.Cells) != 3 {
		t.Fatalf("first frame %s with %d cells, want a snapshot with 3", snap.Type, len(snap.Cells))
	}
	// Cities north to south: Baguio, Manila (Luzon), Cebu (Visayas), Davao (Mindanao).
	var names []string
	for _, c := range snap.Cities {
		names = append(names, c.Name)
	}
	if want := []string{"Baguio", "Manila", "Cebu", "Davao"}; !slices.Equal(names, want) {
		t.Errorf("cities %v, want %v", names, want)
	}
	if got := cells(t, snap)[globeMD.ID()]; got.P50 == nil || *got.P50 <= 15 || *got.P50 > 20 || got.Count != 10 {
		t.Errorf("Globe cell in snapshot: %+v", got)
	}

	f.feed(globeMD, t0.Add(15*time.Second), 18, 5)
	h.tick(t0.Add(16 * time.Second))
	d := next(t, c)
	if d.Type != "delta" || d.Seq != snap.Seq+1 {
		t.Fatalf("got %s seq %d, want delta seq %d", d.Type, d.Seq, snap.Seq+1)
	}
	got := cells(t, d)
	if len(got) != 1 || got[globeMD.ID()].Count != 15 {
		t.Fatalf("delta cells %v, want only the Globe cell with 15 samples", got)
	}
	if d.Window.Name != "5m" || d.Window.To != t0.Add(16*time.Second).UnixMilli() {
		t.Errorf("delta window %+v", d.Window)
	}
}

func TestSubscriptionFiltersAndStatistic(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	f.feed(globeMD, t0, 18, 10)
	f.feed(smartCM, t0, 45, 10)
	h.tick(t0.Add(time.Second))
	c := dial(t, serve(t, h), "carrier=TM", nil) // TM is an alias of Globe
	if s := next(t, c); len(s.Cells) != 1 || cells(t, s)[globeMD.ID()].ID == "" {
		t.Fatalf("URL-filtered snapshot: %d cells", len(s.Cells))
	}
	msg := `{"type":"subscribe","id":"s1","carriers":["Smart"],"window":"1m","statistic":"p90"}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	s := next(t, c)
	if s.Type != "snapshot" || s.Ref != "s1" || s.Window.Name != "1m" {
		t.Fatalf("subscribe answer %s ref %q window %q", s.Type, s.Ref, s.Window.Name)
	}
	// The snapshot echoes the subscription it answers (docs/websocket-protocol.md).
	if sub := s.Subscription; sub == nil || !slices.Equal(sub.Carriers, []string{"Smart"}) || sub.Window != "1m" || sub.Statistic != "p90" {
		t.Fatalf("snapshot's subscription %+v: want carriers [Smart], window 1m, statistic p90", sub)
	}
	cs := cells(t, s)
	sm, ok := cs[smartCM.ID()]
	if len(cs) != 1 || !ok || sm.P90 == nil || sm.P50 != nil {
		t.Fatalf("filtered cells %+v: want only Smart, with p90 and without p50", cs)
	}
	// A change to a Globe cell is not sent to a Smart subscriber; a Smart one is.
	f.feed(globeMD, t0.Add(15*time.Second), 18, 5)
	h.tick(t0.Add(16 * time.Second))
	f.feed(smartCM, t0.Add(30*time.Second), 45, 5)
	h.tick(t0.Add(31 * time.Second))
	d := next(t, c)
	if got := cells(t, d); d.Type != "delta" || len(got) != 1 || got[smartCM.ID()].Count != 15 {
		t.Fatalf("got %s %v, want a delta with the Smart cell only", d.Type, got)
	}
}

func TestDrilldownAndLiveUpdates(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	f.feed(globeMD, t0, 18, 10)
	f.feed(globeMD, t0.Add(15*time.Second), 45, 4)
	h.tick(t0.Add(16 * time.Second))
	c := dial(t, serve(t, h), "", nil)
	next(t, c) // snapshot
	if err := c.WriteJSON(map[string]any{"type": "drilldown", "id": "d1", "cell": globeMD.ID()}); err != nil {
		t.Fatal(err)
	}
	d := next(t, c)
	if d.Type != "drilldown" || d.Ref != "d1" || len(d.Columns) != 240 {
		t.Fatalf("got %s ref %q with %d columns, want drilldown d1 with 240", d.Type, d.Ref, len(d.Columns))
	}
	last, prev := d.Columns[239], d.Columns[238]
	if last.T != t0.Add(15*time.Second).UnixMilli() || last.Count != 4 || prev.Count != 10 {
		t.Fatalf("newest columns t=%d count=%d, before %d; want t=%d 4 and 10", last.T, last.Count, prev.Count, t0.Add(15*time.Second).UnixMilli())
	}
	// (40,50] holds the four 45 ms samples; the median line is inside it.
	if last.Counts[13] != 4 || last.P50 == nil || *last.P50 <= 40 || *last.P50 > 50 {
		t.Errorf("newest column counts %v p50 %v", last.Counts, last.P50)
	}
	if d.Columns[0].Counts != nil || d.Columns[0].P50 != nil {
		t.Errorf("empty column should have null counts and p50: %+v", d.Columns[0])
	}
	f.feed(globeMD, t0.Add(30*time.Second), 18, 3)
	h.tick(t0.Add(31 * time.Second))
	for {
		u := next(t, c)
		if u.Type == "delta" {
			continue
		}
		if u.Type != "drilldown_update" || len(u.Columns) != 2 || u.Columns[1].Count != 3 {
			t.Fatalf("got %s %+v, want a drilldown_update whose newest column has 3 samples", u.Type, u.Columns)
		}
		break
	}
	// Unknown cell: an error naming it.
	if err := c.WriteJSON(map[string]any{"type": "drilldown", "cell": "Nowhere|X|Y|Z"}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, c); e.Type != "error" || e.Code != wire.CodeUnknownCell || !strings.Contains(e.Message, "Nowhere") {
		t.Fatalf("got %+v, want unknown_cell", e)
	}
}

// A watched drill-down whose cell changes bucket layout (a probe with only
// classic buckets joins a path whose samples all had native ones) is sent
// whole again with the new bounds: an update carries none, and columns in
// one layout drawn over the other's bounds would be nonsense.
func TestDrilldownIsResentWhenTheCellsLayoutChanges(t *testing.T) {
	h := newTestHeatmap(t, nil)
	start := t0.Add(-time.Hour)
	native := func(at time.Time, n uint64) {
		h.Observe(&aggregate.Point{Kind: aggregate.KindLatencyNative, Stream: []byte("n"), Cell: globeMD, Start: start, Time: at,
			Exp: &aggregate.Exponential{Scale: 3, Offset: 34, Counts: []uint64{n}}, Sum: 20 * float64(n)})
	}
	native(t0, 1)
	native(t0.Add(15*time.Second), 3)
	h.tick(t0.Add(16 * time.Second))
	c := dial(t, serve(t, h), "", nil)
	next(t, c) // snapshot
	if err := c.WriteJSON(map[string]any{"type": "drilldown", "cell": globeMD.ID()}); err != nil {
		t.Fatal(err)
	}
	if d := next(t, c); d.Type != "drilldown" || len(d.Bounds) != aggregate.NativeBuckets {
		t.Fatalf("got %s with %d bounds, want the native layout's %d", d.Type, len(d.Bounds), aggregate.NativeBuckets)
	}
	classic := make([]uint64, len(aggregate.DefaultBounds)+1)
	h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte("c"), Cell: globeMD, Start: start, Time: t0.Add(15 * time.Second),
		Bounds: aggregate.DefaultBounds, Counts: slices.Clone(classic), Sum: 0})
	classic[9] = 2
	h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte("c"), Cell: globeMD, Start: start, Time: t0.Add(30 * time.Second),
		Bounds: aggregate.DefaultBounds, Counts: classic, Sum: 36})
	h.tick(t0.Add(31 * time.Second))
	for {
		u := next(t, c)
		if u.Type == "delta" {
			continue
		}
		if u.Type != "drilldown" || len(u.Bounds) != len(aggregate.DefaultBounds) || len(u.Columns) != 240 || u.Columns[239].Count != 2 {
			t.Fatalf("got %s with %d bounds and %d columns, want the whole drill-down in the classic layout", u.Type, len(u.Bounds), len(u.Columns))
		}
		break
	}
}

// A watched drill-down gets the columns a probe's backlog filled, marked
// late, not only the two newest.
func TestDrilldownUpdateCarriesTheBacklog(t *testing.T) {
	h := newTestHeatmap(t, nil)
	start := t0.Add(-10 * time.Second)
	observe := func(slot int, n uint64) {
		counts := make([]uint64, len(aggregate.DefaultBounds)+1)
		counts[10] = n
		h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: []byte("h"), Cell: globeMD, Start: start,
			Time: t0.Add(time.Duration(slot) * 15 * time.Second), Bounds: aggregate.DefaultBounds, Counts: counts, Sum: 10 * float64(n)})
	}
	observe(0, 1)
	h.tick(t0.Add(time.Second))
	c := dial(t, serve(t, h), "", nil)
	next(t, c) // snapshot
	if err := c.WriteJSON(map[string]any{"type": "drilldown", "cell": globeMD.ID()}); err != nil {
		t.Fatal(err)
	}
	next(t, c)    // the drill-down
	observe(5, 6) // back after an outage: slots 1 to 4 are in this increase
	for s := 1; s <= 4; s++ {
		observe(s, uint64(s+1)) // the backlog
	}
	h.tick(t0.Add(5*15*time.Second + time.Second))
	for {
		u := next(t, c)
		if u.Type == "delta" {
			continue
		}
		if u.Type != "drilldown_update" || len(u.Columns) != 5 {
			t.Fatalf("got %s with %d columns, want a drilldown_update with the 5 from the oldest late one", u.Type, len(u.Columns))
		}
		for i, col := range u.Columns {
			if wantLate := uint32(1); i == 4 {
				wantLate = 0
				if col.Late != wantLate || col.Count != 1 {
					t.Errorf("recovery column: %d samples, %d late; want 1 and 0", col.Count, col.Late)
				}
			} else if col.Late != wantLate || col.Count != 1 {
				t.Errorf("backlog column %d: %d samples, %d late; want 1 and 1", i, col.Count, col.Late)
			}
		}
		break
	}
}

func TestInvalidMessages(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := newHub(Config{RequestRate: 1e-6, MaxErrors: 12}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.tick(t0)
	base := serve(t, h)
	c := dial(t, base, "", nil)
	next(t, c)
	for _, tc := range []struct{ msg, code, mention string }{
		{`{"type":`, wire.CodeBadJSON, "not valid JSON"},
		{`[1,2]`, wire.CodeBadJSON, "not a JSON object"},
		{`{"type":"launch"}`, wire.CodeUnknownType, "launch"},
		{`{"id":"x"}`, wire.CodeUnknownType, `"type"`},
		{`{"type":"subscribe","window":"7m"}`, wire.CodeBadField, `"window"`},
		{`{"type":"subscribe","carriers":"Globe"}`, wire.CodeBadField, "carriers"},
		{`{"type":"subscribe","statistic":"p42"}`, wire.CodeBadField, "statistic"},
		{`{"type":"ping","v":2}`, wire.CodeUnsupportedVer, "version 2"},
	} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		e := next(t, c)
		if e.Type != "error" || e.Code != tc.code || !strings.Contains(e.Message, tc.mention) {
			t.Errorf("%s: got %s/%s %q, want %s mentioning %q", tc.msg, e.Type, e.Code, e.Message, tc.code, tc.mention)
		}
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, c); e.Code != wire.CodeBinaryUnsupported {
		t.Errorf("binary: got %+v", e)
	}
	// Subscription flood: the burst (5) passes, the rest is refused. That
	// makes 12 errors, the limit: the connection is then closed with a
	// reason, after the error frames.
	for i := range 8 {
		if err := c.WriteJSON(map[string]any{"type": "subscribe", "id": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	limited := 0
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, data, err := c.ReadMessage()
		if err == nil {
			var fr wireFrame
			if json.Unmarshal(data, &fr) == nil && fr.Code == wire.CodeRateLimited {
				limited++
			}
			continue
		}
		var ce *websocket.CloseError
		if !asCloseError(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "too many invalid messages" {
			t.Fatalf("after too many errors: %v, want close 1008 'too many invalid messages'", err)
		}
		break
	}
	if limited != 3 {
		t.Errorf("rate limited %d of 8 subscribes, want 3", limited)
	}
	// Oversized messages are closed with 1009: plain (the frame is over the
	// read limit) and compressed (small on the wire, 5 KB once inflated).
	for _, compress := range []bool{false, true} {
		d := websocket.Dialer{EnableCompression: compress, HandshakeTimeout: 30 * time.Second}
		c2, _, err := d.Dial(wsURL(base, ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		next(t, c2)
		c2.EnableWriteCompression(compress)
		if err := c2.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":"`+strings.Repeat("x", 5000)+`"}`)); err != nil {
			t.Fatal(err)
		}
		_ = c2.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := c2.ReadMessage()
		var ce *websocket.CloseError
		if !asCloseError(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("oversized (compressed=%v): %v %s, want close 1009", compress, err, data)
		}
	}
	for code, want := range map[string]float64{wire.CodeBadJSON: 2, wire.CodeUnknownType: 2, wire.CodeBadField: 3, wire.CodeUnsupportedVer: 1, wire.CodeBinaryUnsupported: 1, wire.CodeRateLimited: 3} {
		if got := testutil.ToFloat64(h.m.invalid.WithLabelValues(code)); got != want {
			t.Errorf("invalid messages{code=%q} = %g, want %g", code, got, want)
		}
	}
	waitFor(t, "too_large counted", func() bool { return testutil.ToFloat64(h.m.invalid.WithLabelValues(wire.CodeTooLarge)) == 2 })
	// The server is unaffected: a new client gets its snapshot.
	c3 := dial(t, base, "", nil)
	if s := next(t, c3); s.Type != "snapshot" {
		t.Fatalf("new client after abuse got %s", s.Type)
	}
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	*ce = e
	return ok
}

// waitFor polls a condition that another goroutine makes true; the bound is
// a failsafe, not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestOriginTokenAndLimits(t *testing.T) {
	h := newTestHeatmap(t, func(c *Config) {
		c.Token = "s3cret"
		c.AllowedOrigins = []string{"https://noc.example"}
		c.MaxConnections = 2
	})
	base := serve(t, h)
	try := func(query string, hdr http.Header) int {
		d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
		c, resp, err := d.Dial(wsURL(base, query), hdr)
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	host := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		name  string
		query string
		hdr   http.Header
		want  int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"wrong token", "token=nope", nil, http.StatusUnauthorized},
		{"bad window", "token=s3cret&window=2m", nil, http.StatusBadRequest},
		{"foreign origin", "token=s3cret", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"same origin", "token=s3cret", http.Header{"Origin": {"http://" + host}}, http.StatusSwitchingProtocols},
		{"allowed origin + bearer", "", http.Header{"Origin": {"https://noc.example"}, "Authorization": {"Bearer s3cret"}}, http.StatusSwitchingProtocols},
		{"over the connection limit", "token=s3cret", nil, http.StatusServiceUnavailable},
	} {
		if got := try(tc.query, tc.hdr); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	for reason, want := range map[string]float64{"unauthorized": 2, "bad_request": 1, "origin": 1, "too_many_connections": 1} {
		if got := testutil.ToFloat64(h.m.upgradesRefuse.WithLabelValues(reason)); got != want {
			t.Errorf("refused{reason=%q} = %g, want %g", reason, got, want)
		}
	}
}

func TestSnapshotAPI(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	f.feed(globeMD, t0, 18, 10)
	f.feed(smartCM, t0, 45, 10)
	h.tick(t0.Add(time.Second))
	base := serve(t, h)
	resp, err := http.Get(base + PathSnapshot + "?network_type=LTE&statistic=p50")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s wireFrame
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP %d, %v", resp.StatusCode, err)
	}
	if cs := cells(t, s); s.Type != "snapshot" || len(cs) != 1 || cs[smartCM.ID()].P50 == nil {
		t.Fatalf("snapshot API: %s %v, want the 4g (LTE) cell only", s.Type, cs)
	}
	resp2, err := http.Get(base + PathDrilldown + "?cell=" + url.QueryEscape(globeMD.ID()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var d wireFrame
	if err := json.NewDecoder(resp2.Body).Decode(&d); err != nil || d.Type != "drilldown" || len(d.Columns) != 240 {
		t.Fatalf("drilldown API: %v %s %d", err, d.Type, len(d.Columns))
	}
	resp3, err := http.Get(base + PathSnapshot + "?window=9m")
	if err != nil {
		t.Fatal(err)
	}
	resp3.Body.Close()
	if resp3.StatusCode != http.StatusBadRequest {
		t.Errorf("bad window: HTTP %d, want 400", resp3.StatusCode)
	}
}

// TestManyClientsAndAStalledOne connects 200 reading clients and one that
// never reads. The stalled one subscribes to every cell (big frames), the
// others to one carrier. Every tick all 200 must receive their delta while
// no send queue ever exceeds its bound; the stalled client is eventually
// coalesced or closed as a slow consumer.
func TestManyClientsAndAStalledOne(t *testing.T) {
	const clients = 200
	h := newTestHeatmap(t, func(c *Config) {
		c.SendQueue = 4
		c.WriteTimeout = 2 * time.Second
		c.MaxConnections = clients + 10
	})
	f := newFeeder(h)
	var keys []pathstate.CellKey
	for i := range 600 {
		keys = append(keys, pathstate.CellKey{SrcCity: "Manila", DstCity: fmt.Sprintf("Dst%03d", i), Carrier: "Smart", NetworkType: "4g"})
	}
	at := t0
	feedAll := func() {
		at = at.Add(15 * time.Second)
		f.feed(globeMD, at, 18, 1)
		for _, k := range keys {
			f.feed(k, at, 30, 1)
		}
	}
	feedAll()
	h.tick(at.Add(time.Second))
	base := serve(t, h)

	// The stalled client: a tiny receive buffer so the server's writes
	// back up quickly, and it never reads.
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	stalled, _, err := d.Dial(wsURL(base, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()

	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, base, "carrier=Globe", nil)
		if s := next(t, conns[i]); s.Type != "snapshot" {
			t.Fatalf("client %d: first frame %s", i, s.Type)
		}
	}
	slow := func() float64 {
		return testutil.ToFloat64(h.m.coalesced) + testutil.ToFloat64(h.m.disconnects.WithLabelValues("slow_consumer"))
	}
	for tick := 0; tick < 400 && (tick < 20 || slow() == 0); tick++ {
		feedAll()
		h.tick(at.Add(time.Second))
		seq := func() uint64 { h.mu.Lock(); defer h.mu.Unlock(); return h.seq }()
		// Memory per connection is bounded: no queue beyond its limit.
		h.mu.Lock()
		for c := range h.clients {
			if n := c.queueLen(); n > h.cfg.SendQueue {
				t.Errorf("a send queue holds %d frames, limit %d", n, h.cfg.SendQueue)
			}
		}
		h.mu.Unlock()
		var wg sync.WaitGroup
		errs := make(chan string, clients)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				for {
					_, data, err := c.ReadMessage()
					if err != nil {
						errs <- fmt.Sprintf("client %d at seq %d: %v", i, seq, err)
						return
					}
					var fr wireFrame
					if err := json.Unmarshal(data, &fr); err != nil {
						errs <- err.Error()
						return
					}
					if fr.Seq >= seq {
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
	}
	if slow() == 0 {
		t.Fatal("the stalled client was never coalesced nor closed")
	}
	if testutil.ToFloat64(h.m.blockingWrites) == 0 {
		t.Error("the stalled client's full socket was not counted")
	}
	if got := testutil.ToFloat64(h.m.encoded); got > 3*float64(testutil.ToFloat64(h.m.frames.WithLabelValues("delta")))/clients+50 {
		t.Errorf("%g frames encoded for %g deltas sent: frames are not shared", got, testutil.ToFloat64(h.m.frames.WithLabelValues("delta")))
	}
}

// TestKeepalive: the server pings; a client that answers stays, one that
// never reads (so never answers) is closed for keepalive.
func TestKeepalive(t *testing.T) {
	h := newTestHeatmap(t, func(c *Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 2 * time.Second // generous: the answering client must not be cut off on a loaded machine
	})
	base := serve(t, h)
	alive := dial(t, base, "", nil)
	pings := make(chan struct{}, 100)
	alive.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := alive.ReadMessage(); err != nil {
				return
			}
		}
	}()
	silent := dial(t, base, "", nil) // never reads: its pongs are never sent
	_ = silent
	waitFor(t, "the silent client closed for keepalive", func() bool {
		return testutil.ToFloat64(h.m.disconnects.WithLabelValues("keepalive_timeout")) == 1
	})
	for range 3 {
		select {
		case <-pings:
		case <-time.After(30 * time.Second): // failsafe only
			t.Fatal("the answering client got no pings")
		}
	}
	if n := h.connCount(); n != 1 {
		t.Fatalf("%d connections left, want the answering one", n)
	}
}
