package prober

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/echo"
)

// UDP measures the round trip of one echo packet to a Bantay reflector.
//
// Each probe uses a fresh socket, so an ICMP error or a late reply left
// over from an earlier run can never be read by a later one, and replies
// are matched by sequence number, probe id and send time, so a duplicate
// or a stray packet on the same port is ignored, not taken as the answer.
type UDP struct {
	address string
	opts    Options
	seq     atomic.Uint64
}

// NewUDP returns a prober for a reflector at host:port.
func NewUDP(address string, opts Options) (*UDP, error) {
	if n := len(opts.ProbeID); n == 0 || n > echo.MaxIDLen {
		return nil, fmt.Errorf("udp prober: probe id %q must be 1..%d bytes", opts.ProbeID, echo.MaxIDLen)
	}
	u := &UDP{address: address, opts: opts}
	// A random start keeps a restarted probe's sequence numbers from
	// matching replies still in flight to its previous incarnation.
	var b [8]byte
	_, _ = rand.Read(b[:])
	u.seq.Store(binary.BigEndian.Uint64(b[:]) >> 1)
	return u, nil
}

// Method implements Prober.
func (*UDP) Method() string { return config.MethodUDP }

// Probe implements Prober.
func (p *UDP) Probe(ctx context.Context) (time.Duration, error) {
	addr, err := resolve(ctx, p.opts, p.address)
	if err != nil {
		return 0, err
	}
	conn, err := p.opts.dialer("udp").DialContext(ctx, "udp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	// Cancellation without a deadline still has to end a blocked Read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	req := echo.Packet{
		Kind:         echo.KindRequest,
		Sequence:     p.seq.Add(1),
		SentUnixNano: time.Now().UnixNano(),
		ProbeID:      p.opts.ProbeID,
	}
	out, err := echo.Append(make([]byte, 0, echo.MaxLen), req)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, echo.MaxLen+1)
	start := time.Now()
	if _, err := conn.Write(out); err != nil {
		return 0, err
	}
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, err
		}
		got, err := echo.Decode(buf[:n])
		if err != nil || got.Kind != echo.KindReply || got.Sequence != req.Sequence ||
			got.ProbeID != req.ProbeID || got.SentUnixNano != req.SentUnixNano {
			continue
		}
		return time.Since(start), nil
	}
}
