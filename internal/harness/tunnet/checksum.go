package tunnet

import "encoding/binary"

// FixChecksums recomputes the IPv4 header checksum and the TCP or UDP
// checksum (RFC 1071, over the pseudo-header) after an address rewrite.
func FixChecksums(pkt []byte) bool {
	hl := int(pkt[0]&0x0f) * 4
	if len(pkt) < hl {
		return false
	}
	pkt[10], pkt[11] = 0, 0
	binary.BigEndian.PutUint16(pkt[10:12], Checksum(pkt[:hl]))
	seg := pkt[hl:]
	var off int
	switch pkt[9] {
	case 6:
		off = 16
	case 17:
		off = 6
	default:
		return false
	}
	if len(seg) < off+2 {
		return false
	}
	seg[off], seg[off+1] = 0, 0
	var pseudo [12]byte
	copy(pseudo[0:8], pkt[12:20])
	pseudo[9] = pkt[9]
	binary.BigEndian.PutUint16(pseudo[10:12], uint16(len(seg)))
	c := fold(sum(sum(0, pseudo[:]), seg))
	if c == 0 && pkt[9] == 17 {
		c = 0xffff // UDP's 0 means "no checksum"
	}
	binary.BigEndian.PutUint16(seg[off:off+2], c)
	return true
}

func sum(acc uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

// Checksum is the Internet checksum of b (RFC 1071).
func Checksum(b []byte) uint16 { return fold(sum(0, b)) }

func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
