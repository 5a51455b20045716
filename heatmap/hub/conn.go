package hub

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bantay-noc/bantay/heatmap/wire"
	"golang.org/x/time/rate"
)

// client is one websocket connection: a reader goroutine (client messages,
// pongs) and a bounded queue of shared, pre-encoded frames that one of the
// hub's few writers drains with non-blocking vectored writes straight to
// the socket. Only when the socket is full does the client get a goroutine
// of its own, which finishes the write the blocking way (bounded by
// write_timeout) and hands the client back; so a stalled client never
// holds up a writer, and a connection costs no goroutine to write.
//
// Exactly one party writes data at a time: the client's writer, or its
// slow goroutine while slow is set. gorilla/websocket itself writes only a
// close frame when the reader meets a protocol error or an oversized
// message; that is one write(2) under the socket's lock, so it lands between
// frames except after a half-written one, when the connection is ending
// anyway.
type client struct {
	h        *Hub
	conn     *websocket.Conn
	nc       net.Conn
	raw      rawWriter
	hasRaw   bool
	compress bool
	w        *writer

	// group and drill are guarded by hub.mu.
	group *group
	drill string

	qmu       sync.Mutex
	queue     []*frame // len <= cfg.SendQueue
	resync    bool     // the queue overflowed: send a fresh snapshot next
	ping      bool     // a keepalive ping is due
	closing   closeRequest
	scheduled bool // on its writer's ready list
	slow      bool // its own goroutine is writing: the socket was full
	ended     bool // finished, or its close frame sent: nothing more is written

	// out and iov are the batch being written, owned by whoever writes.
	out []*frame
	iov [][]byte

	done      chan struct{}
	closeOnce sync.Once

	// requests limits subscribe and drilldown messages (request_rate,
	// request_burst); errBudget is the budget of error frames, which refills
	// one per minute, so only a burst of bad messages (max_errors within
	// it) closes the connection. Both are used by the reader goroutine.
	requests  *rate.Limiter
	errBudget *rate.Limiter
}

// closeRequest is a close frame to send and why the connection ends.
type closeRequest struct {
	set    bool
	frame  *frame
	reason string
	// graceful: send the close frame after what is queued and leave the
	// end to the reader, which waits for the peer's answer.
	graceful bool
}

func newClient(h *Hub, conn *websocket.Conn, compress bool, w *writer) *client {
	c := &client{
		h: h, conn: conn, nc: conn.NetConn(), compress: compress, w: w,
		queue:    make([]*frame, 0, h.cfg.SendQueue),
		done:     make(chan struct{}),
		requests: rate.NewLimiter(rate.Limit(h.cfg.RequestRate), h.cfg.RequestBurst),
		// The max_errors-th error in a burst closes: the budget allows
		// one fewer.
		errBudget: rate.NewLimiter(rate.Every(time.Minute), h.cfg.MaxErrors-1),
	}
	c.raw, c.hasRaw = newRawWriter(c.nc)
	// Control frames the peer sends are answered through the queue, so
	// that gorilla does not write beside the hub's writer.
	conn.SetPingHandler(func(data string) error {
		c.enqueue(controlFrame("", opPong, []byte(data)))
		return nil
	})
	conn.SetCloseHandler(func(code int, _ string) error {
		var echo []byte
		if code != websocket.CloseNoStatusReceived {
			echo = websocket.FormatCloseMessage(code, "")
		}
		c.requestClose(closeRequest{frame: controlFrame("", opClose, echo), reason: "client_closed"})
		return nil
	})
	return c
}

// enqueue queues a frame without ever blocking. When the queue is full the
// client is behind: its queued frames are dropped and the writer will send
// the latest snapshot instead (coalescing), so memory stays bounded by
// SendQueue frame references per connection.
func (c *client) enqueue(f *frame) {
	c.qmu.Lock()
	switch {
	case c.resync:
		// Everything up to now will be covered by the resync snapshot.
	case len(c.queue) >= c.h.cfg.SendQueue:
		clear(c.queue)
		c.queue = c.queue[:0]
		c.resync = true
		c.h.m.coalesced.Inc()
	default:
		c.queue = append(c.queue, f)
	}
	c.scheduleLocked()
}

// scheduleLocked puts the client on its writer's list unless it is there,
// being written by its slow goroutine (which looks at the queue after each
// write) or done. It unlocks c.qmu.
func (c *client) scheduleLocked() {
	add := !c.scheduled && !c.slow && !c.ended
	if add {
		c.scheduled = true
	}
	c.qmu.Unlock()
	if add {
		c.w.add(c)
	}
}

// pingDue asks for a keepalive ping with the next write.
func (c *client) pingDue() {
	c.qmu.Lock()
	c.ping = true
	c.scheduleLocked()
}

// replaceQueue drops the queued snapshots and deltas (they belonged to the
// previous wire.Subscription; f, a snapshot, supersedes them) but keeps answers
// such as error frames, and queues f.
func (c *client) replaceQueue(f *frame) {
	c.qmu.Lock()
	kept := c.queue[:0]
	for _, q := range c.queue {
		if q.typ != "snapshot" && q.typ != "delta" {
			kept = append(kept, q)
		}
	}
	clear(c.queue[len(kept):])
	c.queue = append(kept, f)
	c.resync = false
	c.scheduleLocked()
}

func (c *client) queueLen() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue)
}

// requestClose has the writer send r's close frame (first request wins)
// and then end the connection, or, when graceful, leave that to the reader.
func (c *client) requestClose(r closeRequest) {
	c.qmu.Lock()
	if !c.closing.set {
		r.set = true
		c.closing = r
	}
	c.scheduleLocked()
}

// take moves what is due into c.out and c.iov, in writing order: a ping,
// the frames (after the resync frames when the queue overflowed, none when
// closing at once), the close frame. It reports the close request due with
// this batch. Caller holds c.qmu; the resync frames are fetched after.
func (c *client) takeLocked() (resync bool, cl closeRequest) {
	c.out = c.out[:0]
	if c.ping {
		c.out = append(c.out, pingFrame)
		c.ping = false
	}
	cl = c.closing
	if cl.set && !cl.graceful {
		clear(c.queue)
		c.queue = c.queue[:0]
		c.resync = false
	}
	c.out = append(c.out, c.queue...)
	clear(c.queue)
	c.queue = c.queue[:0]
	resync, c.resync = c.resync, false
	if cl.set {
		c.ended = true // nothing after the close frame
	}
	return resync, cl
}

// due reports whether anything waits to be written. Caller holds c.qmu.
func (c *client) dueLocked() bool {
	return !c.ended && (len(c.queue) > 0 || c.resync || c.ping || c.closing.set)
}

// prepare completes the batch taken: the resync frames first, the close
// frame last, and the bytes of each frame as this client gets them.
func (c *client) prepare(resync bool, cl closeRequest) {
	if resync {
		c.out = append(c.h.resyncFrames(c), c.out...)
	}
	if cl.set {
		c.out = append(c.out, cl.frame)
	}
	c.iov = c.iov[:0]
	for _, f := range c.out {
		c.iov = append(c.iov, f.forClient(c.compress, c.h.cfg.CompressMinBytes))
	}
}

// flush is the writer's turn with this client: write what is due without
// waiting; what the socket does not take now goes to a goroutine of the
// client's own.
func (c *client) flush() {
	c.qmu.Lock()
	c.scheduled = false
	if c.slow || !c.dueLocked() {
		c.qmu.Unlock()
		return
	}
	resync, cl := c.takeLocked()
	c.qmu.Unlock()
	c.prepare(resync, cl)
	iov := c.iov
	if c.hasRaw {
		n, err := c.raw.tryWrite(iov)
		if err != nil {
			c.finish("write_error")
			return
		}
		if iov = consumed(iov, n); len(iov) == 0 {
			c.written(cl)
			return
		}
	}
	c.qmu.Lock()
	c.slow = true
	c.qmu.Unlock()
	c.h.m.blockingWrites.Inc()
	go c.writeSlow(iov, cl)
}

// writeSlow finishes a write the socket did not take at once, then writes
// whatever was queued meanwhile, and hands the client back to its writer
// when the queue is empty. A write that takes longer than write_timeout
// ends the connection as a slow consumer (no close frame: one is half
// written).
func (c *client) writeSlow(iov [][]byte, cl closeRequest) {
	for {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout))
		bufs := net.Buffers(iov)
		if _, err := bufs.WriteTo(c.nc); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.finish("slow_consumer")
			} else {
				c.finish("write_error")
			}
			return
		}
		c.written(cl)
		c.qmu.Lock()
		if !c.dueLocked() {
			c.slow = false
			c.qmu.Unlock()
			return
		}
		var resync bool
		resync, cl = c.takeLocked()
		c.qmu.Unlock()
		c.prepare(resync, cl)
		iov = c.iov
	}
}

// written counts the batch in c.out, now in the socket, and carries out
// its close request.
func (c *client) written(cl closeRequest) {
	now := time.Now().UnixNano()
	for i, f := range c.out {
		if f.typ != "" {
			c.h.m.sent(f.typ, f.size)
		}
		if f.born != 0 {
			c.h.m.deliveryLag.Observe(float64(now-f.born) / 1e9)
		}
		c.out[i] = nil
	}
	clear(c.iov)
	if cl.set && !cl.graceful {
		c.finish(cl.reason)
	}
}

// consumed drops the first n bytes from bufs.
func consumed(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// closeWith ends the connection, sending a close frame with code and text
// first when code is non-zero (best effort: a stalled peer may never read
// it; the writer sends it, and Close does not wait for it long), and
// counts the reason.
func (c *client) closeWith(code int, text, reason string) {
	if code == 0 {
		c.finish(reason)
		return
	}
	c.requestClose(closeRequest{frame: controlFrame("", opClose, websocket.FormatCloseMessage(code, text)), reason: reason})
}

// finish ends the connection once and counts the reason.
func (c *client) finish(reason string) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		c.ended = true
		clear(c.queue)
		c.queue = c.queue[:0]
		c.qmu.Unlock()
		close(c.done)
		_ = c.conn.Close()
		c.h.unregister(c)
		c.h.slots.Add(-1)
		c.h.m.disconnects.WithLabelValues(reason).Inc()
	})
}

// reject answers a bad message with an error frame, and closes the
// connection with 1008 once it has made too many mistakes.
func (c *client) reject(e *wire.Error) bool {
	c.h.m.invalid.WithLabelValues(e.Code).Inc()
	// The budget refills, so a page that now and then trips the rate limit
	// over a day on the wall is not cut off; a burst of garbage is.
	c.enqueue(newFrame("error", wire.ErrorFrame(e)))
	if !c.errBudget.Allow() {
		c.closeGracefully(websocket.ClosePolicyViolation, "too many invalid messages", "too_many_errors")
		return false
	}
	return true
}

// closeGracefully has the writer send the close frame after what is
// queued, then drains input until the peer answers (or the write timeout
// passes), so the peer sees the reason rather than a TCP reset caused by
// unread input. Called from the reader goroutine.
func (c *client) closeGracefully(code int, text, reason string) {
	c.requestClose(closeRequest{frame: controlFrame("", opClose, websocket.FormatCloseMessage(code, text)), reason: reason, graceful: true})
	_ = c.conn.SetReadDeadline(time.Now().Add(c.h.cfg.WriteTimeout + time.Second))
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			break
		}
	}
	c.finish(reason)
}

// readLoop reads and answers client messages until the connection ends.
func (c *client) readLoop() {
	cfg := &c.h.cfg
	c.conn.SetReadLimit(cfg.MaxMessageBytes)
	_ = c.conn.SetReadDeadline(time.Now().Add(cfg.PongTimeout))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(cfg.PongTimeout))
	})
	for {
		mt, r, err := c.conn.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		// SetReadLimit bounds the frame on the wire; a permessage-deflate
		// frame can inflate far beyond it, so the inflated size is bounded
		// here too (one byte over the limit is enough to know).
		data, err := io.ReadAll(io.LimitReader(r, cfg.MaxMessageBytes+1))
		if err != nil {
			c.readFailed(err)
			return
		}
		if int64(len(data)) > cfg.MaxMessageBytes {
			c.h.m.invalid.WithLabelValues(wire.CodeTooLarge).Inc()
			c.closeGracefully(websocket.CloseMessageTooBig, "message too big", "message_too_big")
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(cfg.PongTimeout))
		if mt != websocket.TextMessage {
			if !c.reject(&wire.Error{Code: wire.CodeBinaryUnsupported, Msg: "binary messages are not part of the protocol; send JSON text"}) {
				return
			}
			continue
		}
		req, perr := c.h.parser.Parse(data)
		if perr != nil {
			if !c.reject(perr) {
				return
			}
			continue
		}
		if (req.Kind == wire.ReqSubscribe || req.Kind == wire.ReqDrilldown) && !c.requests.Allow() {
			if !c.reject(&wire.Error{Code: wire.CodeRateLimited, Msg: "too many subscribe/drilldown messages; the message was ignored", Ref: req.ID}) {
				return
			}
			continue
		}
		switch req.Kind {
		case wire.ReqSubscribe:
			c.h.mu.Lock()
			if c.group != nil {
				c.h.join(c, req.Sub, req.ID, true)
			}
			c.h.mu.Unlock()
		case wire.ReqDrilldown:
			if !c.h.startDrill(c, req.Cell, req.ID) {
				if !c.reject(&wire.Error{Code: wire.CodeUnknownCell, Msg: "no cell with id " + wire.Quote(req.Cell), Ref: req.ID}) {
					return
				}
			}
		case wire.ReqDrilldownStop:
			c.h.mu.Lock()
			c.h.stopDrill(c)
			c.h.mu.Unlock()
		case wire.ReqPing:
			c.enqueue(newFrame("pong", wire.PongFrame(req.ID, time.Now().UnixMilli())))
		}
	}
}

func (c *client) readFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has already sent 1009 (message too big).
		c.h.m.invalid.WithLabelValues(wire.CodeTooLarge).Inc()
		c.closeWith(0, "", "message_too_big")
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		// The close handler queued the echo; the writer ends the
		// connection once it is sent.
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.closeWith(websocket.ClosePolicyViolation, "keepalive timeout", "keepalive_timeout")
			return
		}
		c.closeWith(0, "", "read_error")
	}
}
