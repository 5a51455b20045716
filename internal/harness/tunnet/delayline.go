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
type DelayLine struct {
	local, remote, peer [4]byte
	delay               atomic.Int64
}

// NewDelayLine serves dev as a delay line of delay until the test ends.
func NewDelayLine(t testing.TB, dev *os.File, local, remote, peer netip.Addr, delay time.Duration) *DelayLine {
	t.Helper()
	d := &DelayLine{local: local.As4(), remote: remote.As4(), peer: peer.As4()}
	d.delay.Store(int64(delay))
	Serve(t, dev, d.forward, nil)
	return d
}

// SetDelay sets the delay of the packets read from now on.
func (d *DelayLine) SetDelay(delay time.Duration) { d.delay.Store(int64(delay)) }

func (d *DelayLine) forward(pkt []byte) ([]byte, time.Duration, int) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || [4]byte(pkt[12:16]) != d.local {
		return nil, 0, 0
	}
	var wait time.Duration
	switch [4]byte(pkt[16:20]) {
	case d.remote: // outbound: arrives at the listener from peer
		copy(pkt[12:16], d.peer[:])
		wait = time.Duration(d.delay.Load())
	case d.peer: // the listener's answer: arrives from remote
		copy(pkt[12:16], d.remote[:])
	default:
		return nil, 0, 0
	}
	copy(pkt[16:20], d.local[:])
	if !FixChecksums(pkt) {
		return nil, 0, 0
	}
	return pkt, wait, 1
}
