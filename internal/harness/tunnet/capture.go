//go:build linux

package tunnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/bantay-noc/bantay/probes/echo"
)

// Capture timestamps the ICMP and UDP echo requests and replies that cross one
// network device, as a tap on a link would: an AF_PACKET socket bound to
// the device, with the kernel's receive timestamps (SO_TIMESTAMPNS). An
// outgoing packet is stamped as the device is handed it, an incoming one
// as the device delivers it to the stack, which is also the timestamp a
// prober's socket reads with SO_TIMESTAMPNS: the time the reply arrived.
type Capture struct {
	fd  int
	buf []byte
	oob []byte
}

// Echo is one captured echo request (Out) or reply.
type Echo struct {
	At      time.Time
	Out     bool
	ID, Seq uint16
}

// Trip is an echo request seen leaving through the device and the first
// reply to it seen coming back (Replied zero when none came).
type Trip struct {
	ID, Seq       uint16
	Sent, Replied time.Time
}

// RTT is the trip's time on the wire; false when it was not answered.
func (tr Trip) RTT() (time.Duration, bool) {
	return tr.Replied.Sub(tr.Sent), !tr.Replied.IsZero()
}

// Listen opens a capture on the device with index ifindex, closed when
// the test ends. Packets queue in the socket (a 16 MiB buffer) until Drain.
func Listen(t testing.TB, ifindex int) *Capture {
	t.Helper()
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		t.Fatalf("bind packet socket to interface %d: %v", ifindex, err)
	}
	for _, o := range []struct{ name, v int }{{unix.SO_TIMESTAMPNS, 1}, {unix.SO_RCVBUFFORCE, 16 << 20}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.name, o.v); err != nil {
			t.Fatalf("packet socket option %d: %v", o.name, err)
		}
	}
	return &Capture{fd: fd, buf: make([]byte, 65535), oob: make([]byte, 128)}
}

// Frame is one IPv4 packet that crossed the device: when the kernel
// stamped it, whether it was leaving (Out) or arriving, and its bytes.
type Frame struct {
	At     time.Time
	Out    bool
	Packet []byte
}

// DrainFrames returns the packets captured since the last drain, in the
// order they crossed the device. Every packet of a measurement that has
// ended is already queued: the kernel hands a packet to the capture before
// it delivers it to the prober's socket.
func (c *Capture) DrainFrames() ([]Frame, error) {
	var out []Frame
	for {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, c.buf, c.oob, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("capture: %w", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		at, err := stamp(c.oob[:oobn])
		if err != nil {
			return out, err
		}
		out = append(out, Frame{At: at, Out: ll.Pkttype == unix.PACKET_OUTGOING, Packet: append([]byte(nil), c.buf[:n]...)})
	}
}

// Drain returns the echo packets (ICMP echo, Bantay's UDP echo) captured
// since the last drain, in the order they crossed the device.
func (c *Capture) Drain() ([]Echo, error) {
	frames, err := c.DrainFrames()
	var out []Echo
	for _, f := range frames {
		if e, ok := parseEcho(f.Packet); ok {
			e.At, e.Out = f.At, f.Out
			out = append(out, e)
		}
	}
	return out, err
}

// Trips pairs each request in echoes with the first reply of the same
// identifier and sequence number after it, in the order they were sent.
func Trips(echoes []Echo) []Trip {
	type key struct{ id, seq uint16 }
	open := map[key]int{}
	var trips []Trip
	for _, e := range echoes {
		k := key{e.ID, e.Seq}
		if e.Out {
			open[k] = len(trips)
			trips = append(trips, Trip{ID: e.ID, Seq: e.Seq, Sent: e.At})
			continue
		}
		if i, ok := open[k]; ok {
			trips[i].Replied = e.At
			delete(open, k)
		}
	}
	return trips
}

// RTTs are the times on the wire of the trips answered within timeout, in
// send order, and the number of the others: what a prober that waits
// timeout for each reply must count as lost.
func RTTs(trips []Trip, timeout time.Duration) (rtts []time.Duration, lost int) {
	for _, tr := range trips {
		if d, ok := tr.RTT(); ok && d <= timeout {
			rtts = append(rtts, d)
		} else {
			lost++
		}
	}
	return rtts, lost
}

// parseEcho reads an IPv4 ICMP echo request or reply (types 8 and 0), or
// a UDP datagram carrying a Bantay echo request or reply, whose ID is then
// the two ports XORed (the same for a request and its reply) and Seq the
// low 16 bits of its sequence number.
func parseEcho(pkt []byte) (Echo, bool) {
	h, err := ipv4.ParseHeader(pkt)
	if err != nil || len(pkt) < h.Len+8 {
		return Echo{}, false
	}
	m := pkt[h.Len:]
	switch h.Protocol {
	case 1:
		if m[0] != byte(ipv4.ICMPTypeEcho) && m[0] != byte(ipv4.ICMPTypeEchoReply) {
			return Echo{}, false
		}
		return Echo{ID: binary.BigEndian.Uint16(m[4:6]), Seq: binary.BigEndian.Uint16(m[6:8])}, true
	case 17:
		p, err := echo.Decode(m[8:])
		if err != nil {
			return Echo{}, false
		}
		return Echo{ID: binary.BigEndian.Uint16(m[0:2]) ^ binary.BigEndian.Uint16(m[2:4]), Seq: uint16(p.Sequence)}, true
	}
	return Echo{}, false
}

// stamp is the SCM_TIMESTAMPNS of a received packet.
func stamp(oob []byte) (time.Time, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, fmt.Errorf("capture: control message: %w", err)
	}
	i := slices.IndexFunc(msgs, func(m unix.SocketControlMessage) bool {
		return m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS
	})
	if i < 0 || len(msgs[i].Data) < int(unsafe.Sizeof(unix.Timespec{})) {
		return time.Time{}, errors.New("capture: a packet without its kernel timestamp")
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&msgs[i].Data[0]))
	return time.Unix(ts.Unix()), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
