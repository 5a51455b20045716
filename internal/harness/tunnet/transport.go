package tunnet

import (
	"encoding/binary"
	"net/netip"
)

// TCP flags, as Transport.Flags holds them.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagACK = 0x10
)

// Transport is the TCP or UDP header of an IPv4 packet, as a capture's
// analysis needs it: the two ends, TCP's flags, and the payload.
type Transport struct {
	Proto    byte // 6 or 17
	Src, Dst netip.AddrPort
	Flags    byte   // TCP only
	Seq      uint32 // TCP only: the first payload byte's sequence number
	Payload  []byte
}

// ParseTransport reads an IPv4 packet carrying TCP or UDP; false for
// anything else or a truncated header.
func ParseTransport(pkt []byte) (Transport, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return Transport{}, false
	}
	hl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if hl < 20 || total < hl || len(pkt) < total {
		return Transport{}, false
	}
	seg := pkt[hl:total]
	tr := Transport{Proto: pkt[9]}
	var off int
	switch tr.Proto {
	case 6:
		if len(seg) < 20 || int(seg[12]>>4)*4 < 20 || len(seg) < int(seg[12]>>4)*4 {
			return Transport{}, false
		}
		off, tr.Flags, tr.Seq = int(seg[12]>>4)*4, seg[13], binary.BigEndian.Uint32(seg[4:8])
	case 17:
		if len(seg) < 8 {
			return Transport{}, false
		}
		off = 8
	default:
		return Transport{}, false
	}
	tr.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(seg[0:2]))
	tr.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), binary.BigEndian.Uint16(seg[2:4]))
	tr.Payload = seg[off:]
	return tr, true
}
