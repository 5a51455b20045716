package hub

import "github.com/bantay-noc/bantay/heatmap/wire"

// feedRingSize is how many events the Hub keeps for new and resyncing
// clients: enough to fill the page's feed (about 50 lines) under any
// carrier/network-type filter without unbounded memory.
const feedRingSize = 200

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
func (h *Hub) PublishEvents(items []wire.FeedEvent) {
	if len(items) == 0 {
		return
	}
	enc := make([][]byte, 0, len(items))
	for i := range items {
		enc = append(enc, wire.AppendFeedEvent(nil, &items[i]))
	}
	f := newFrame("events", wire.EventsFrame(enc))

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
		g.snap = nil
	}
	h.m.encoded.Inc()
	for c := range h.clients {
		c.enqueue(f)
	}
}
