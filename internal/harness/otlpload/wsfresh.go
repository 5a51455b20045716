package otlpload

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// WSFreshness measures sample time → in a heatmap websocket frame
// (docs/websocket-protocol.md): for every cell a frame brings with a newer
// last_seen (the newest sample time of the cell), the frame's arrival minus
// that time.
type WSFreshness struct {
	Lags
}

// frame is the part of a snapshot or delta frame this reads.
type frame struct {
	Type  string `json:"type"`
	Cells []struct {
		ID       string `json:"id"`
		LastSeen int64  `json:"last_seen"`
	} `json:"cells"`
}

// Dial connects to url (ws://host:8080/ws) with token as a reader
// credential, if not empty.
func (f *WSFreshness) Dial(ctx context.Context, url, token string) (*websocket.Conn, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: HTTP %d: %w", url, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	return conn, nil
}

// Read records lags from conn's frames until ctx ends or the connection
// fails, and closes conn. Cells seen in the first snapshot only set the
// baseline: their data is older than the connection.
func (f *WSFreshness) Read(ctx context.Context, conn *websocket.Conn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	seen := map[string]int64{}
	first := true
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("websocket: %w", err)
		}
		arrived := time.Now()
		var fr frame
		if err := json.Unmarshal(data, &fr); err != nil {
			return fmt.Errorf("websocket: bad frame: %w", err)
		}
		if fr.Type != "snapshot" && fr.Type != "delta" {
			continue
		}
		for _, c := range fr.Cells {
			if c.LastSeen > seen[c.ID] {
				if !first {
					f.Add(arrived.Sub(time.UnixMilli(c.LastSeen)))
				}
				seen[c.ID] = c.LastSeen
			}
		}
		first = false
	}
}
