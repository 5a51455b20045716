package heatmap

import (
	"encoding/json"
	"time"
)

// feedRingSize is how many events the hub keeps for new and resyncing
// clients: enough to fill the page's feed (about 50 lines) under any
// carrier/network-type filter without unbounded memory.
const feedRingSize = 200

// FeedEvent is one line of the NOC page's event feed (path state changes,
// probe failure bursts, rejected probes, rule reloads; docs/events.md).
// Empty fields are left out of the JSON.
type FeedEvent struct {
	// Time is when it happened, in Unix milliseconds on the wire.
	Time time.Time `json:"-"`
	// Kind is the event kind (event.kind), e.g. "path_degraded".
	Kind string `json:"kind"`
	// Level is "info", "warn" or "error" ("" when unknown).
	Level string `json:"level,omitempty"`
	// Body is the human sentence.
	Body        string `json:"body"`
	SrcCity     string `json:"src_city,omitempty"`
	DstCity     string `json:"dst_city,omitempty"`
	Carrier     string `json:"carrier,omitempty"`
	NetworkType string `json:"network_type,omitempty"`
	Probe       string `json:"probe,omitempty"`
}

// wireFeedEvent is FeedEvent with its time in milliseconds.
type wireFeedEvent struct {
	TimeMs int64 `json:"time"`
	FeedEvent
}

// feedRing is the last feedRingSize encoded events, oldest first.
type feedRing struct {
	items [][]byte
	start int // index of the oldest when full
}

func (r *feedRing) add(e []byte) {
	if len(r.items) < feedRingSize {
		r.items = append(r.items, e)
		return
	}
	r.items[r.start] = e // drop the oldest
	r.start = (r.start + 1) % feedRingSize
}

// appendTo renders the ring as a JSON array, oldest first.
func (r *feedRing) appendTo(b []byte) []byte {
	b = append(b, '[')
	for i := range r.items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r.items[(r.start+i)%len(r.items)]...)
	}
	return append(b, ']')
}

// PublishEvents shows events in every client's feed: they join the ring of
// the last 200 that snapshots carry and are broadcast at once as one
// "events" frame, encoded once for all clients (docs/websocket-protocol.md).
// It never blocks on clients (a client that is behind gets a snapshot,
// which includes the ring) and is safe for concurrent use.
func (h *Heatmap) PublishEvents(items []FeedEvent) {
	if len(items) == 0 {
		return
	}
	enc := make([][]byte, 0, len(items))
	for i := range items {
		e := &items[i]
		ms := int64(0)
		if !e.Time.IsZero() {
			ms = e.Time.UnixMilli()
		}
		data, err := json.Marshal(wireFeedEvent{TimeMs: ms, FeedEvent: *e})
		if err != nil {
			// Only strings and an int64: Marshal cannot fail.
			panic("heatmap: encode feed event: " + err.Error())
		}
		enc = append(enc, data)
	}
	h.hub.publishEvents(enc)
}

func (h *hub) publishEvents(enc [][]byte) {
	b := appendHead(nil, "events")
	b = append(b, `,"events":[`...)
	for i, e := range enc {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	b = append(b, "]}"...)
	f := newFrame("events", b)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, e := range enc {
		h.feed.add(e)
	}
	// Cached snapshots no longer carry the whole ring.
	for _, g := range h.groups {
		g.snap = frame{}
	}
	h.m.encoded.Inc()
	for c := range h.clients {
		c.enqueue(f)
	}
}
