//go:build linux

package tunnet

import (
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// DelayLine makes a remote host out of this one for TCP and UDP: the
// kernel's packets to Remote (routed through the TUN device) come back,
// after the delay, as packets from Peer to Local, so a listener on Local
// answers them; its answers to Peer come back at once as packets from
// Remote. A connect to Remote therefore takes the delay plus loopback
// time, with the kernel's own TCP (or UDP) on both ends: a user-space netem
// for one direction, as every client→server flight is held. The TUN device
// must route both Remote and Peer (a /23 holding the two /24s, say).
//
// Packets leave the line in the order they entered it, in each direction:
// the held ones from one queue, each at its due time, the others at once.
// A timer per packet (as Serve's) could reorder a TCP flight when two
// fire late, and the kernel would deliver the reordered segments' data
// with the earlier one's timestamp, which no real path of constant delay
// does.
type DelayLine struct {
	local, remote, peer [4]byte
	delay               atomic.Int64
	held                chan heldPacket
}

type heldPacket struct {
	due time.Time
	pkt []byte
}

// NewDelayLine serves dev as a delay line of delay until the test ends.
func NewDelayLine(t testing.TB, dev *os.File, local, remote, peer netip.Addr, delay time.Duration) *DelayLine {
	t.Helper()
	d := &DelayLine{local: local.As4(), remote: remote.As4(), peer: peer.As4(), held: make(chan heldPacket, 4096)}
	d.delay.Store(int64(delay))
	Serve(t, dev, d.forward, nil)
	done := make(chan struct{})
	stopped := make(chan struct{})
	// Registered after Serve's, so it runs first: the queue stops before
	// the device closes.
	t.Cleanup(func() {
		close(done)
		<-stopped
	})
	go func() {
		defer close(stopped)
		for {
			select {
			case h := <-d.held:
				timer := time.NewTimer(time.Until(h.due))
				select {
				case <-timer.C:
					dev.Write(h.pkt)
				case <-done:
					timer.Stop()
					return
				}
			case <-done:
				return
			}
		}
	}()
	return d
}

// SetDelay sets the delay of the packets read from now on.
func (d *DelayLine) SetDelay(delay time.Duration) { d.delay.Store(int64(delay)) }

func (d *DelayLine) forward(pkt []byte) ([]byte, time.Duration, int) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || [4]byte(pkt[12:16]) != d.local {
		return nil, 0, 0
	}
	outbound := false
	switch [4]byte(pkt[16:20]) {
	case d.remote: // outbound: arrives at the listener from peer
		copy(pkt[12:16], d.peer[:])
		outbound = true
	case d.peer: // the listener's answer: arrives from remote
		copy(pkt[12:16], d.remote[:])
	default:
		return nil, 0, 0
	}
	copy(pkt[16:20], d.local[:])
	if !FixChecksums(pkt) {
		return nil, 0, 0
	}
	if outbound {
		// Bounded: a full queue drops, as a router's would.
		select {
		case d.held <- heldPacket{due: time.Now().Add(time.Duration(d.delay.Load())), pkt: pkt}:
		default:
		}
		return nil, 0, 0
	}
	return pkt, 0, 1
}
