package hub

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
)

// frame is one message encoded once as websocket frames (RFC 6455) and
// shared by every client it is queued for. A server's frames are not
// masked, so the same bytes go to every connection: written straight to
// the socket, they cost no per-client work but the write itself.
type frame struct {
	typ  string
	size int   // payload bytes, uncompressed
	born int64 // UnixNano when the tick that made it began (deltas only)
	wire []byte

	// deflated is the permessage-deflate form, made on first need (only
	// clients that negotiated it and only frames of compress_min_bytes or
	// more use it), once for all of them.
	deflateOnce sync.Once
	deflated    []byte
}

// Opcodes and header bits used (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xa
	finBit  = 0x80
	rsv1Bit = 0x40 // the frame is compressed (RFC 7692)
)

func newFrame(typ string, data []byte) *frame {
	return &frame{typ: typ, size: len(data), wire: appendFrame(make([]byte, 0, len(data)+10), finBit|opText, data)}
}

// controlFrame is a ping, pong or close frame (payload ≤ 125 bytes).
func controlFrame(typ string, op byte, payload []byte) *frame {
	return &frame{typ: typ, wire: appendFrame(nil, finBit|op, payload)}
}

// appendFrame appends one unmasked frame: the first header byte, the
// payload length in its shortest form, the payload.
func appendFrame(b []byte, b0 byte, payload []byte) []byte {
	switch n := len(payload); {
	case n < 126:
		b = append(b, b0, byte(n))
	case n <= 0xffff:
		b = append(b, b0, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, b0, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// deflateLevel is gorilla/websocket's default compression level (fastest).
const deflateLevel = flate.BestSpeed

var flaters = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, deflateLevel); return w }}

// payload returns the frame's uncompressed payload.
func (f *frame) payload() []byte { return f.wire[len(f.wire)-f.size:] }

// forClient returns the bytes to write to a client: compressed when it
// negotiated permessage-deflate and the frame is worth it.
func (f *frame) forClient(compress bool, minBytes int) []byte {
	if !compress || f.size < minBytes || f.wire[0]&0x0f != opText {
		return f.wire
	}
	f.deflateOnce.Do(func() {
		// RFC 7692 §7.2.1, without context takeover (what the handshake
		// negotiates): compress, sync-flush, drop the 00 00 ff ff tail.
		var buf bytes.Buffer
		w := flaters.Get().(*flate.Writer)
		w.Reset(&buf)
		_, _ = w.Write(f.payload())
		_ = w.Flush()
		flaters.Put(w)
		out := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
		f.deflated = appendFrame(make([]byte, 0, len(out)+10), finBit|rsv1Bit|opText, out)
	})
	return f.deflated
}

// offersDeflate reports whether the handshake offers permessage-deflate in
// a form gorilla/websocket's Upgrader also finds, so that the hub writes
// compressed frames exactly to the connections gorilla negotiated them
// with (it does not say which those are). It is stricter than gorilla's
// parser: an element it cannot read ends the search with false, and the
// upgrader used then has compression off, so the two never disagree.
func offersDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-Websocket-Extensions") {
		for _, elem := range strings.Split(v, ",") {
			params := strings.Split(elem, ";")
			for i, p := range params {
				name, val, hasVal := strings.Cut(strings.TrimSpace(p), "=")
				name = strings.TrimSpace(name)
				if !isToken(name) || (i == 0 && hasVal) || (hasVal && !isToken(strings.Trim(strings.TrimSpace(val), `"`))) {
					return false
				}
			}
			if strings.TrimSpace(params[0]) == "permessage-deflate" {
				return true
			}
		}
	}
	return false
}

// isToken reports whether s is a non-empty RFC 7230 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
