// Package reflector is the UDP echo reflector that ships with bantay-probe.
// A probe in one city sends echo requests to the reflector in another, so
// every site both measures and is measured (a mesh, like goldpinger's).
//
// The reflector answers only well-formed echo requests (see package echo);
// anything else is counted by reason and dropped. It never answers garbage
// or replies, so it cannot be used to amplify traffic or be looped into
// another reflector.
package reflector

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bantay-noc/bantay/probes/echo"
)

// garbageLogEvery bounds how often dropped packets are logged, so a flood
// of junk cannot flood the log as well.
const garbageLogEvery = time.Minute

// Drop reasons, as counted in Stats.Dropped.
const (
	DropShort    = "short"
	DropMagic    = "magic"
	DropVersion  = "version"
	DropKind     = "kind"
	DropLength   = "length"
	DropReserved = "reserved"
	DropTooLarge = "too_large"
)

var dropReasons = []string{DropShort, DropMagic, DropVersion, DropKind, DropLength, DropReserved, DropTooLarge}

// Stats are the reflector's counters since it started.
type Stats struct {
	Received  uint64
	Reflected uint64
	// Dropped counts packets that were not answered, by reason.
	Dropped map[string]uint64
	// SendErrors counts replies the kernel refused to send.
	SendErrors uint64
	// ReadErrors counts failed socket reads (the reflector keeps serving).
	ReadErrors uint64
}

// Reflector answers echo requests on one UDP socket.
type Reflector struct {
	conn   net.PacketConn
	logger *slog.Logger

	received, reflected, sendErrors, readErrors atomic.Uint64
	dropped                                     map[string]*atomic.Uint64

	logMu         sync.Mutex
	lastGarbage   time.Time
	droppedLogged uint64
	lastReadError time.Time

	closeOnce sync.Once
}

// Listen opens a UDP socket on addr (e.g. "127.0.0.1:7001").
func Listen(addr string, logger *slog.Logger) (*Reflector, error) {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return New(conn, logger), nil
}

// New serves on an existing socket; the reflector owns it from now on.
func New(conn net.PacketConn, logger *slog.Logger) *Reflector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reflector{conn: conn, logger: logger, dropped: make(map[string]*atomic.Uint64, len(dropReasons))}
	for _, reason := range dropReasons {
		r.dropped[reason] = new(atomic.Uint64)
	}
	return r
}

// Addr is the address the reflector listens on.
func (r *Reflector) Addr() net.Addr { return r.conn.LocalAddr() }

// Serve answers requests until ctx is cancelled or Close is called, and
// then returns nil. Socket errors are counted and logged, never fatal.
func (r *Reflector) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	// One byte more than the largest valid packet, so an oversized datagram
	// is seen as oversized rather than silently truncated into a valid one.
	buf := make([]byte, echo.MaxLen+1)
	for {
		n, from, err := r.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Anything else (e.g. a queued ICMP error) is transient for a
			// datagram socket: count it and keep serving, slowly enough
			// that a persistent error cannot spin a core.
			r.readErrors.Add(1)
			r.logReadError(err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.received.Add(1)
		reply, reason := handle(buf[:n])
		if reason != "" {
			r.drop(reason, from)
			continue
		}
		if _, err := r.conn.WriteTo(reply, from); err != nil {
			r.sendErrors.Add(1)
			continue
		}
		r.reflected.Add(1)
	}
}

// handle turns a request into its reply in place, or names why it drops it.
func handle(b []byte) (reply []byte, dropReason string) {
	if len(b) > echo.MaxLen {
		return nil, DropTooLarge
	}
	switch err := echo.MakeReply(b); {
	case err == nil:
		return b, ""
	case errors.Is(err, echo.ErrShort):
		return nil, DropShort
	case errors.Is(err, echo.ErrMagic):
		return nil, DropMagic
	case errors.Is(err, echo.ErrVersion):
		return nil, DropVersion
	case errors.Is(err, echo.ErrKind):
		return nil, DropKind
	case errors.Is(err, echo.ErrReserved):
		return nil, DropReserved
	default:
		return nil, DropLength
	}
}

func (r *Reflector) drop(reason string, from net.Addr) {
	r.dropped[reason].Add(1)
	now := time.Now()
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if !r.lastGarbage.IsZero() && now.Sub(r.lastGarbage) < garbageLogEvery {
		return
	}
	total := r.totalDropped()
	r.logger.Warn("dropping packets that are not echo requests",
		"reason", reason, "from", from.String(), "dropped_since_last_log", total-r.droppedLogged, "dropped_total", total)
	r.lastGarbage, r.droppedLogged = now, total
}

func (r *Reflector) logReadError(err error) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if now := time.Now(); r.lastReadError.IsZero() || now.Sub(r.lastReadError) >= garbageLogEvery {
		r.logger.Warn("reading from the socket failed; still serving", "error", err, "read_errors_total", r.readErrors.Load())
		r.lastReadError = now
	}
}

func (r *Reflector) totalDropped() uint64 {
	var n uint64
	for _, c := range r.dropped {
		n += c.Load()
	}
	return n
}

// Stats returns a snapshot of the counters.
func (r *Reflector) Stats() Stats {
	s := Stats{
		Received:   r.received.Load(),
		Reflected:  r.reflected.Load(),
		SendErrors: r.sendErrors.Load(),
		ReadErrors: r.readErrors.Load(),
		Dropped:    make(map[string]uint64, len(r.dropped)),
	}
	for reason, c := range r.dropped {
		s.Dropped[reason] = c.Load()
	}
	return s
}

// Close stops Serve and releases the socket. It is safe to call twice.
func (r *Reflector) Close() error {
	var err error
	r.closeOnce.Do(func() { err = r.conn.Close() })
	return err
}
