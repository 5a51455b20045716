package wire

import (
	"encoding/json"
	"time"
)

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
	// TraceID is the hex trace id of the sample the event is about (a
	// failure burst's first failure), as on its exemplar in the store.
	TraceID string `json:"trace_id,omitempty"`
}

// wireFeedEvent is FeedEvent with its time in milliseconds.
type wireFeedEvent struct {
	TimeMs int64 `json:"time"`
	FeedEvent
}

// AppendFeedEvent appends the EVENT object of one feed line.
func AppendFeedEvent(b []byte, e *FeedEvent) []byte {
	ms := int64(0)
	if !e.Time.IsZero() {
		ms = e.Time.UnixMilli()
	}
	data, err := json.Marshal(wireFeedEvent{TimeMs: ms, FeedEvent: *e})
	if err != nil {
		// Only strings and an int64: Marshal cannot fail.
		panic("heatmap: encode feed event: " + err.Error())
	}
	return append(b, data...)
}

// EventsFrame renders an "events" frame of already encoded EVENT objects.
func EventsFrame(enc [][]byte) []byte {
	b := AppendHead(nil, "events")
	b = append(b, `,"events":[`...)
	for i, e := range enc {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}
