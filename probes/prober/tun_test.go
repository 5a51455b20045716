//go:build linux

package prober

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/bantay-noc/bantay/internal/harness/tunnet"
)

// tunResponder answers IPv4 ICMP echo requests routed into a TUN device:
// the n-th request after delay, none if drop[n], two replies if dup[n],
// a destination unreachable (host) quoting it if unreach[n].
// It is what `tc netem` would be on a real link, in user space, inside the
// test's own network namespace (netem is not available here).
type tunResponder struct {
	delay   time.Duration
	drop    map[int]bool
	dup     map[int]bool
	unreach map[int]bool
}

// start creates the TUN device name with local address local/24 (the
// rest of the /24 is reachable through it) and serves until the test ends.
func (r tunResponder) start(t *testing.T, name, local string) {
	t.Helper()
	n := 0 // echo requests seen; only the serving goroutine touches it
	tunnet.Serve(t, tunnet.OpenTUN(t, name, local+"/24"), func(pkt []byte) ([]byte, time.Duration, int) {
		reply, ok := tunnet.EchoReply(pkt)
		if !ok {
			return nil, 0, 0 // router solicitations and the like
		}
		i := n
		n++
		switch {
		case r.drop[i]:
			return nil, 0, 0
		case r.dup[i]:
			return reply, r.delay, 2
		case r.unreach[i]:
			return hostUnreachable(pkt), r.delay, 1
		}
		return reply, r.delay, 1
	}, nil)
}

// hostUnreachable is the ICMP destination unreachable (code 1, host) a
// router would send for the IPv4 packet pkt, quoting its header and first
// 8 bytes, as if from pkt's destination.
func hostUnreachable(pkt []byte) []byte {
	hl := int(pkt[0]&0x0f) * 4
	body, _ := (&icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1, Body: &icmp.DstUnreach{Data: pkt[:hl+8]}}).Marshal(nil)
	out := append([]byte(nil), pkt[:hl]...)
	copy(out[12:16], pkt[16:20])
	copy(out[16:20], pkt[12:16])
	binary.BigEndian.PutUint16(out[2:4], uint16(hl+len(body)))
	out[10], out[11] = 0, 0
	binary.BigEndian.PutUint16(out[10:12], tunnet.Checksum(out))
	return append(out, body...)
}
