package hub

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/heatmap/wire"
)

// countingDialer is a gorilla client whose socket counts the bytes it reads.
func countingDialer(compress bool, n *atomic.Int64) *websocket.Dialer {
	return &websocket.Dialer{EnableCompression: compress, HandshakeTimeout: 30 * time.Second,
		NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, n: n}, nil
		}}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// TestFramesForPlainAndCompressingClients: the hub encodes websocket
// frames itself — short, 16-bit and 64-bit lengths, deflated for a client
// that negotiated permessage-deflate — and gorilla's client reads the same
// messages from both kinds of connection, the compressing one with far
// fewer bytes on the wire.
func TestFramesForPlainAndCompressingClients(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	for i := range 600 { // a snapshot of ~200 KB: the 64-bit length form
		f.feed(pathstate.CellKey{SrcCity: "Manila", DstCity: fmt.Sprintf("Dst%03d", i), Carrier: "Smart", NetworkType: "4g"}, t0, 30, 1)
	}
	h.tick(t0.Add(time.Second))
	base := serve(t, h)
	var plainBytes, deflateBytes atomic.Int64
	read := func(d *websocket.Dialer, query string) []byte {
		c, _, err := d.Dial(wsURL(base, query), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // failsafe
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, query := range []string{"", "carrier=Globe"} { // ~200 KB, and a few hundred bytes
		plainBytes.Store(0)
		deflateBytes.Store(0)
		plain := read(countingDialer(false, &plainBytes), query)
		deflated := read(countingDialer(true, &deflateBytes), query)
		if string(plain) != string(deflated) {
			t.Fatalf("query %q: the two clients read different snapshots (%d and %d bytes)", query, len(plain), len(deflated))
		}
		if query == "" && deflateBytes.Load()*4 > plainBytes.Load() {
			t.Errorf("a compressing client read %d bytes for a %d-byte snapshot (plain: %d): not deflated", deflateBytes.Load(), len(plain), plainBytes.Load())
		}
	}
	// A message of 126..65535 bytes: an events frame with a long body.
	c := dial(t, base, "", nil)
	next(t, c)
	body := strings.Repeat("x", 2000)
	h.PublishEvents([]wire.FeedEvent{{Kind: "probe_failure", Body: body}})
	if fr := next(t, c); fr.Type != "events" {
		t.Fatalf("got %s, want the events frame", fr.Type)
	}
}

// TestOffersDeflateAgreesWithGorilla: whenever offersDeflate says a
// handshake offers permessage-deflate, gorilla's Upgrader negotiates it
// (the hub would otherwise send compressed frames to a client that cannot
// read them); malformed offers are refused.
func TestOffersDeflateAgreesWithGorilla(t *testing.T) {
	u := websocket.Upgrader{EnableCompression: true}
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := u.Upgrade(w, r, nil); err == nil {
			_ = c.Close()
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	negotiated := func(ext string) bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // failsafe
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: %s\r\n\r\n", ext)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate")
	}
	for _, tc := range []struct {
		ext  string
		want bool
	}{
		{"permessage-deflate", true},
		{"permessage-deflate; client_max_window_bits", true},
		{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=15", true},
		{`foo; a="b", permessage-deflate`, true},
		{"foo", false},
		{"permessage-deflate x", false},
		{"permessage-deflate;", false},
		{", permessage-deflate", false},
		{`foo; a="b,c", permessage-deflate`, false},
		{"foo bar, permessage-deflate", false},
	} {
		h := http.Header{}
		h.Set("Sec-WebSocket-Extensions", tc.ext)
		got := offersDeflate(h)
		if got != tc.want {
			t.Errorf("offersDeflate(%q) = %v, want %v", tc.ext, got, tc.want)
		}
		if got && !negotiated(tc.ext) {
			t.Errorf("%q: offersDeflate says yes, gorilla does not negotiate it", tc.ext)
		}
	}
}

// TestControlFramesGoThroughTheWriter: the hub answers a client's ping,
// echoes its close, and sends 1001 at shutdown — all written by the hub's
// writer, none beside it.
func TestControlFramesGoThroughTheWriter(t *testing.T) {
	h := newTestHeatmap(t, nil)
	base := serve(t, h)

	c := dial(t, base, "", nil)
	next(t, c) // the snapshot
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case got := <-pong:
		if got != "hello" {
			t.Errorf("pong %q, want hello", got)
		}
	case <-time.After(30 * time.Second): // failsafe only
		t.Fatal("no pong")
	}

	closing := dial(t, base, "", nil)
	next(t, closing)
	if err := closing.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = closing.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := closing.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after the client's close: %v, want the server's 1000 echo", err)
	}
	waitFor(t, "the closed client counted", func() bool {
		return testutil.ToFloat64(h.m.disconnects.WithLabelValues("client_closed")) == 1
	})

	last := dial(t, base, "", nil)
	next(t, last)
	h.Close()
	_ = last.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := last.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("at shutdown: %v, want 1001", err)
	}
}

// TestTLSConnectionsAreWrittenTheBlockingWay: a TLS connection has no raw
// socket to write to (each client's bytes are encrypted for it), so its
// frames go the blocking way, and arrive like any others.
func TestTLSConnectionsAreWrittenTheBlockingWay(t *testing.T) {
	h := newTestHeatmap(t, nil)
	f := newFeeder(h)
	f.feed(globeMD, t0, 20, 3)
	h.tick(t0.Add(time.Second))
	srv := httptest.NewTLSServer(h.Handler())
	defer srv.Close()
	d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 30 * time.Second}
	c, _, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https")+PathWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if fr := next(t, c); fr.Type != "snapshot" || len(fr.Cells) != 1 {
		t.Fatalf("first frame %s with %d cells, want the snapshot with one", fr.Type, len(fr.Cells))
	}
	f.feed(globeMD, t0.Add(15*time.Second), 40, 3)
	h.tick(t0.Add(16 * time.Second))
	if fr := next(t, c); fr.Type != "delta" {
		t.Fatalf("got %s, want a delta", fr.Type)
	}
	// The writer counts a write-out once it returns, which may be just
	// after the client has read the frame.
	waitFor(t, "both write-outs of the TLS connection (snapshot, delta) counted as blocking", func() bool {
		return testutil.ToFloat64(h.m.blockingWrites) >= 2
	})
}
