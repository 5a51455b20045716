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
// pongs) and a writer goroutine that drains a bounded queue of shared,
// pre-encoded frames. The broadcaster only ever appends to the queue under
// a short lock, so a stalled client costs it nothing.
type client struct {
	h        *Hub
	conn     *websocket.Conn
	compress bool

	// group and drill are guarded by hub.mu.
	group *group
	drill string

	qmu    sync.Mutex
	queue  []frame // len <= cfg.SendQueue
	resync bool    // the queue overflowed: send a fresh snapshot next
	wake   chan struct{}
	// closeCode/closeText: a close frame to send once the queue is flushed
	// (so an error frame is not overtaken by the close that follows it).
	closeCode int
	closeText string

	done      chan struct{}
	closeOnce sync.Once

	// requests limits subscribe and drilldown messages (request_rate,
	// request_burst); errBudget is the budget of error frames, which refills
	// one per minute, so only a burst of bad messages (max_errors within
	// it) closes the connection. Both are used by the reader goroutine.
	requests  *rate.Limiter
	errBudget *rate.Limiter
}

func newClient(h *Hub, conn *websocket.Conn, compress bool) *client {
	return &client{
		h: h, conn: conn, compress: compress,
		queue:    make([]frame, 0, h.cfg.SendQueue),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		requests: rate.NewLimiter(rate.Limit(h.cfg.RequestRate), h.cfg.RequestBurst),
		// The max_errors-th error in a burst closes: the budget allows
		// one fewer.
		errBudget: rate.NewLimiter(rate.Every(time.Minute), h.cfg.MaxErrors-1),
	}
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a frame without ever blocking. When the queue is full the
// client is behind: its queued frames are dropped and the writer will send
// the latest snapshot instead (coalescing), so memory stays bounded by
// SendQueue frame references per connection.
func (c *client) enqueue(f frame) {
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
	c.qmu.Unlock()
	c.signal()
}

// replaceQueue drops the queued snapshots and deltas (they belonged to the
// previous wire.Subscription; f, a snapshot, supersedes them) but keeps answers
// such as error frames, and queues f.
func (c *client) replaceQueue(f frame) {
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
	c.qmu.Unlock()
	c.signal()
}

func (c *client) queueLen() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue)
}

// take moves the queued frames into dst and reports a pending resync and
// a requested close.
func (c *client) take(dst []frame) ([]frame, bool, int, string) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	dst = append(dst[:0], c.queue...)
	clear(c.queue)
	c.queue = c.queue[:0]
	resync := c.resync
	c.resync = false
	return dst, resync, c.closeCode, c.closeText
}

// writeLoop is the connection's only data writer.
func (c *client) writeLoop() {
	ping := time.NewTicker(c.h.cfg.PingInterval)
	defer ping.Stop()
	batch := make([]frame, 0, c.h.cfg.SendQueue)
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.h.cfg.WriteTimeout)); err != nil {
				c.writeFailed(err)
				return
			}
		case <-c.wake:
			var resync bool
			var closeCode int
			var closeText string
			batch, resync, closeCode, closeText = c.take(batch)
			if resync {
				batch = append(c.h.resyncFrames(c), batch...)
			}
			for i := range batch {
				if err := c.write(batch[i]); err != nil {
					c.writeFailed(err)
					return
				}
				batch[i] = frame{}
			}
			if closeCode != 0 {
				// The reader waits for the peer's answer and then ends the
				// connection; nothing more is written.
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, closeText), time.Now().Add(c.h.cfg.WriteTimeout))
				<-c.done
				return
			}
		}
	}
}

func (c *client) write(f frame) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	// Compression is negotiated per connection but chosen per frame: small
	// frames are not worth the CPU and the prepared frame caches both forms.
	c.conn.EnableWriteCompression(c.compress && f.size >= c.h.cfg.CompressMinBytes)
	if err := c.conn.WritePreparedMessage(f.pm); err != nil {
		return err
	}
	c.h.m.sent(f.typ, f.size)
	if f.born != 0 {
		c.h.m.deliveryLag.Observe(float64(time.Now().UnixNano()-f.born) / 1e9)
	}
	return nil
}

func (c *client) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.closeWith(websocket.CloseTryAgainLater, "slow consumer", "slow_consumer")
		return
	}
	c.closeWith(0, "", "write_error")
}

// closeWith ends the connection once, sending a close frame with code and
// text first when code is non-zero (best effort: a stalled peer may never
// read it), and counts the reason.
func (c *client) closeWith(code int, text, reason string) {
	c.closeOnce.Do(func() {
		if code != 0 {
			_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		}
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
	c.qmu.Lock()
	c.closeCode, c.closeText = code, text
	c.qmu.Unlock()
	c.signal()
	_ = c.conn.SetReadDeadline(time.Now().Add(c.h.cfg.WriteTimeout + time.Second))
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			break
		}
	}
	c.closeWith(0, "", reason)
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
		c.closeWith(0, "", "client_closed")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.closeWith(websocket.ClosePolicyViolation, "keepalive timeout", "keepalive_timeout")
			return
		}
		c.closeWith(0, "", "read_error")
	}
}
