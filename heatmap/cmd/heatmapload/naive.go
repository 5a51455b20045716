package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/hub"
)

// naiveHub is the peer Bantay's hub is measured against: the textbook
// fan-out of gorilla/websocket's chat example. Every client has a buffered
// channel, a reader and a writer goroutine, and every frame is framed (and
// compressed, when negotiated) once per client by WriteMessage; there is no
// PreparedMessage and no shared write buffer. A client whose channel is
// full is dropped, as in the chat example; the channel holds as many frames
// as Bantay's send queue (send_queue, 8), so both bound a client alike.
//
// It serves the real hub's frames from the same feed, so only the fan-out
// differs: one upstream connection to the real /ws (on a second loopback
// listener) receives each delta and the relay copies it to every client's
// channel; a new client's snapshot is rendered for it alone by the real
// snapshot endpoint. The upstream hop is measured (hop) and included in the
// peer's lag, so it costs the peer a little.
type naiveHub struct {
	real     http.Handler
	queue    int
	upgrader websocket.Upgrader
	lag, hop prometheus.Histogram

	mu      sync.Mutex
	clients map[chan naiveFrame]struct{}
}

type naiveFrame struct {
	data []byte
	ms   int64 // the delta's "time" (tick start, Unix ms); 0 for the snapshot
}

const (
	naiveLagMetric = "heatmapload_naive_delivery_lag_seconds"
	naiveHopMetric = "heatmapload_naive_upstream_lag_seconds"
)

func startNaive(h *heatmap.Heatmap, reg prometheus.Registerer) (*naiveHub, error) {
	n := &naiveHub{
		real: h.Handler(), queue: h.Config().Hub.SendQueue,
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, EnableCompression: true,
			CheckOrigin: func(*http.Request) bool { return true }},
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: naiveLagMetric, Buckets: hub.DeliveryLagBuckets,
			Help: "Naive hub: from the tick's start until the delta was written to a client's socket, per client."}),
		hop: prometheus.NewHistogram(prometheus.HistogramOpts{Name: naiveHopMetric, Buckets: hub.DeliveryLagBuckets,
			Help: "Naive hub: from the tick's start until the relay received the delta from the real hub."}),
		clients: map[chan naiveFrame]struct{}{},
	}
	reg.MustRegister(n.lag, n.hop)
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: n.real, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(up) }()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+up.Addr().String()+hub.PathWS, nil)
	if err != nil {
		return nil, fmt.Errorf("naive hub: connect to the real hub: %w", err)
	}
	go n.relay(conn)
	return n, nil
}

// relay copies every delta from the real hub to every client's channel.
func (n *naiveHub) relay(conn *websocket.Conn) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			log.Printf("naive hub: upstream closed: %v", err)
			return
		}
		ms, ok := frameTime(data)
		if !isDelta(data) || !ok {
			continue
		}
		n.hop.Observe(sinceMs(ms))
		n.mu.Lock()
		for ch := range n.clients {
			select {
			case ch <- naiveFrame{data: data, ms: ms}:
			default:
				n.dropLocked(ch)
			}
		}
		n.mu.Unlock()
	}
}

// ServeHTTP upgrades /ws itself and hands every other path to the real hub.
func (n *naiveHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != hub.PathWS {
		n.real.ServeHTTP(w, r)
		return
	}
	conn, err := n.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	snap := httptest.NewRecorder()
	n.real.ServeHTTP(snap, httptest.NewRequest(http.MethodGet, hub.PathSnapshot, nil))
	ch := make(chan naiveFrame, n.queue)
	ch <- naiveFrame{data: snap.Body.Bytes()}
	n.mu.Lock()
	n.clients[ch] = struct{}{}
	n.mu.Unlock()
	go n.write(conn, ch)
	go func() {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				break
			}
		}
		n.drop(ch)
	}()
}

func (n *naiveHub) write(conn *websocket.Conn, ch chan naiveFrame) {
	defer conn.Close()
	for f := range ch {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteMessage(websocket.TextMessage, f.data); err != nil {
			n.drop(ch)
			return
		}
		if f.ms != 0 {
			n.lag.Observe(sinceMs(f.ms))
		}
	}
}

func (n *naiveHub) drop(ch chan naiveFrame) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropLocked(ch)
}

func (n *naiveHub) dropLocked(ch chan naiveFrame) {
	if _, ok := n.clients[ch]; ok {
		delete(n.clients, ch)
		close(ch)
	}
}

func (n *naiveHub) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.clients)
}

func sinceMs(ms int64) float64 { return float64(time.Now().UnixMilli()-ms) / 1e3 }
