package hub

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/heatmap/wire"
)

type wireEvents struct {
	Type   string `json:"type"`
	Events []struct {
		Time        int64  `json:"time"`
		Kind        string `json:"kind"`
		Level       string `json:"level"`
		Body        string `json:"body"`
		SrcCity     string `json:"src_city"`
		DstCity     string `json:"dst_city"`
		Carrier     string `json:"carrier"`
		NetworkType string `json:"network_type"`
		Probe       string `json:"probe"`
	} `json:"events"`
}

func readEvents(t *testing.T, c interface {
	SetReadDeadline(time.Time) error
	ReadMessage() (int, []byte, error)
}) wireEvents {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var w wireEvents
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatalf("frame is not valid JSON: %v\n%s", err, data)
	}
	return w
}

func TestPublishEventsBroadcastAndSnapshot(t *testing.T) {
	h := newTestHeatmap(t, nil)
	base := serve(t, h)
	c := dial(t, base, "", nil)
	if s := readEvents(t, c); s.Type != "snapshot" || s.Events == nil || len(s.Events) != 0 {
		t.Fatalf("first frame: type %q, events %v; want a snapshot with an empty events array", s.Type, s.Events)
	}

	at := time.UnixMilli(1_700_000_000_123)
	h.PublishEvents([]wire.FeedEvent{
		{Time: at, Kind: "path_degraded", Level: "warn", Body: "Manila → Davao via Globe 5g degraded",
			SrcCity: "Manila", DstCity: "Davao", Carrier: "Globe", NetworkType: "5g"},
		{Time: at.Add(time.Second), Kind: "rules_reloaded", Level: "info", Body: "rules reloaded"},
	})
	w := readEvents(t, c)
	if w.Type != "events" || len(w.Events) != 2 {
		t.Fatalf("got %q with %d events, want an events frame with 2", w.Type, len(w.Events))
	}
	e := w.Events[0]
	if e.Time != at.UnixMilli() || e.Kind != "path_degraded" || e.Level != "warn" || e.SrcCity != "Manila" ||
		e.DstCity != "Davao" || e.Carrier != "Globe" || e.NetworkType != "5g" || e.Body == "" {
		t.Fatalf("first event decoded as %+v", e)
	}
	if w.Events[1].Kind != "rules_reloaded" || w.Events[1].Carrier != "" {
		t.Fatalf("second event decoded as %+v", w.Events[1])
	}

	// More than the ring holds: a new client's snapshot has the last 200,
	// oldest first.
	var many []wire.FeedEvent
	for i := range 250 {
		many = append(many, wire.FeedEvent{Time: at, Kind: "probe_failure", Body: "burst " + strconv.Itoa(i)})
	}
	h.PublishEvents(many)
	c2 := dial(t, base, "carriers=Smart", nil)
	s := readEvents(t, c2)
	if s.Type != "snapshot" || len(s.Events) != feedRingSize {
		t.Fatalf("snapshot has %d events, want %d", len(s.Events), feedRingSize)
	}
	if s.Events[0].Body != "burst 50" || s.Events[feedRingSize-1].Body != "burst 249" {
		t.Fatalf("ring holds %q … %q, want burst 50 … burst 249", s.Events[0].Body, s.Events[feedRingSize-1].Body)
	}
}

func TestFeedRingDropsOldest(t *testing.T) {
	var r feedRing
	for i := range feedRingSize + 3 {
		r.add([]byte(strconv.Itoa(i)))
	}
	var got []int
	if err := json.Unmarshal(r.appendTo(nil), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != feedRingSize || got[0] != 3 || got[len(got)-1] != feedRingSize+2 {
		t.Fatalf("ring = %d items from %d to %d", len(got), got[0], got[len(got)-1])
	}
}
