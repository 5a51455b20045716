// Package echo is the wire format of Bantay's UDP echo: the packet a probe
// sends to a reflector and the reflector sends back.
//
// Layout (big endian), 24 bytes of header followed by the probe id:
//
//	offset size field
//	0      4    magic "BNTY"
//	4      1    version (1)
//	5      1    kind: 0 request, 1 reply
//	6      1    length of the probe id (1..63)
//	7      1    reserved, 0
//	8      8    sequence number
//	16     8    send time, Unix nanoseconds (informational; RTT uses the
//	            sender's monotonic clock, clocks of two sites never agree)
//	24     n    probe id
//
// The kind byte keeps two reflectors from echoing each other forever: a
// reflector answers only requests and its answers are replies.
package echo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants.
const (
	Magic     = "BNTY"
	Version   = 1
	HeaderLen = 24
	MaxIDLen  = 63
	MaxLen    = HeaderLen + MaxIDLen
)

// Packet kinds.
const (
	// KindRequest marks a packet sent by a probe.
	KindRequest byte = 0
	// KindReply marks a packet sent back by a reflector.
	KindReply byte = 1
)

// Packet is one decoded echo packet.
type Packet struct {
	Kind     byte
	Sequence uint64
	// SentUnixNano is the sender's wall clock at send time.
	SentUnixNano int64
	ProbeID      string
}

// Errors returned by Decode, so a reflector can count garbage by kind.
var (
	ErrShort   = errors.New("echo: packet shorter than the header")
	ErrMagic   = errors.New("echo: bad magic")
	ErrVersion = errors.New("echo: unsupported version")
	ErrKind    = errors.New("echo: unknown packet kind")
	// ErrReserved: the reserved byte must be 0 until a new version defines it.
	ErrReserved = errors.New("echo: reserved byte is not zero")
	ErrLength   = errors.New("echo: length does not match the probe id length")
)

// Append encodes p onto dst and returns the extended slice.
func Append(dst []byte, p Packet) ([]byte, error) {
	if n := len(p.ProbeID); n == 0 || n > MaxIDLen {
		return dst, fmt.Errorf("echo: probe id length %d is not 1..%d", n, MaxIDLen)
	}
	if p.Kind != KindRequest && p.Kind != KindReply {
		return dst, ErrKind
	}
	dst = append(dst, Magic...)
	dst = append(dst, Version, p.Kind, byte(len(p.ProbeID)), 0)
	dst = binary.BigEndian.AppendUint64(dst, p.Sequence)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.SentUnixNano))
	return append(dst, p.ProbeID...), nil
}

// Decode parses one packet. It never panics, whatever b holds.
func Decode(b []byte) (Packet, error) {
	if err := check(b); err != nil {
		return Packet{}, err
	}
	return Packet{
		Kind:         b[5],
		Sequence:     binary.BigEndian.Uint64(b[8:16]),
		SentUnixNano: int64(binary.BigEndian.Uint64(b[16:24])),
		ProbeID:      string(b[HeaderLen:]),
	}, nil
}

// check validates a packet without decoding it, so the reflector's hot
// path does not allocate.
func check(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if string(b[:4]) != Magic {
		return ErrMagic
	}
	if b[4] != Version {
		return ErrVersion
	}
	if kind := b[5]; kind != KindRequest && kind != KindReply {
		return ErrKind
	}
	if b[7] != 0 {
		return ErrReserved
	}
	if n := int(b[6]); n == 0 || n > MaxIDLen || len(b) != HeaderLen+n {
		return ErrLength
	}
	return nil
}

// MakeReply turns a valid request in place into its reply, so a reflector
// answers without allocating. It returns an error for anything that is not
// a well-formed request.
func MakeReply(b []byte) error {
	if err := check(b); err != nil {
		return err
	}
	if b[5] != KindRequest {
		return ErrKind
	}
	b[5] = KindReply
	return nil
}
