package prober

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/echo"
)

// UDP measures the round trip of echo packets to a Bantay reflector.
//
// Each probe, or each round, uses a fresh socket, so an ICMP error or a
// late reply left over from an earlier one can never be read by a later
// one. Replies are matched by sequence number, probe id and send time, so
// a duplicate or a stray packet on the same port is counted or ignored,
// never taken as the answer. The reflector echoes packets unchanged, so
// sequence numbers need nothing new from it (any reflector since version 1
// of the packet serves).
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
func (p *UDP) Probe(ctx context.Context) (Result, error) { return probeSequenced(ctx, p) }

func (p *UDP) openRound(ctx context.Context, count int) (roundConn, error) {
	addr, err := resolve(ctx, p.opts, p.address)
	if err != nil {
		return nil, err
	}
	conn, err := p.opts.dialer("udp").DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	last := p.seq.Add(uint64(count))
	r := &udpRound{
		datagram: datagram{conn: conn, buf: make([]byte, echo.MaxLen+1)},
		probeID:  p.opts.ProbeID,
		first:    last - uint64(count) + 1,
		sentAt:   make([]int64, count),
	}
	r.timestamps(count)
	return r, nil
}

// datagram is a connected datagram socket (udp, dns) that reads the
// kernel's send and receive timestamps where the platform has them
// (udp_linux.go).
type datagram struct {
	conn net.Conn
	buf  []byte
	// raw, oob and stamps read kernel timestamps; raw is nil without
	// them, stamps nil without send timestamps.
	raw    syscall.RawConn
	oob    []byte
	stamps *sendStamps
}

// write sends b as probe i.
func (d *datagram) write(i int, b []byte) error {
	d.stamps.sending(i)
	_, err := d.conn.Write(b)
	if err != nil {
		d.stamps.failed()
	}
	return err
}

func (d *datagram) close() error { return d.conn.Close() }

type udpRound struct {
	datagram
	probeID string
	first   uint64
	mu      sync.Mutex
	sentAt  []int64 // each probe's SentUnixNano, to match its reply
}

func (u *udpRound) send(i int) error {
	now := time.Now().UnixNano()
	u.mu.Lock()
	u.sentAt[i] = now
	u.mu.Unlock()
	out, err := echo.Append(make([]byte, 0, echo.MaxLen), echo.Packet{
		Kind: echo.KindRequest, Sequence: u.first + uint64(i), SentUnixNano: now, ProbeID: u.probeID,
	})
	if err != nil {
		return err
	}
	return u.write(i, out)
}

func (u *udpRound) recv() (int, time.Time, time.Time, time.Time, error) {
	for {
		n, mono, kernel, err := u.read()
		if err != nil {
			return -1, mono, time.Time{}, time.Time{}, err
		}
		got, err := echo.Decode(u.buf[:n])
		if err != nil || got.Kind != echo.KindReply || got.ProbeID != u.probeID ||
			got.Sequence-u.first >= uint64(len(u.sentAt)) {
			continue
		}
		i := int(got.Sequence - u.first)
		u.mu.Lock()
		ok := u.sentAt[i] == got.SentUnixNano
		u.mu.Unlock()
		if ok {
			return i, mono, u.stamps.of(i), kernel, nil
		}
	}
}
