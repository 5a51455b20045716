package heatmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// ProtocolVersion is the websocket protocol version (docs/websocket-protocol.md).
const ProtocolVersion = 1

// Subprotocol is the Sec-WebSocket-Protocol name of this version.
const Subprotocol = "bantay.heatmap.v1"

// Error codes of error frames; also the label of
// bantay_heatmap_ws_invalid_messages_total.
const (
	codeBadJSON           = "bad_json"
	codeUnknownType       = "unknown_type"
	codeBadField          = "bad_field"
	codeUnsupportedVer    = "unsupported_version"
	codeUnknownCell       = "unknown_cell"
	codeRateLimited       = "rate_limited"
	codeBinaryUnsupported = "binary_unsupported"
	codeTooLarge          = "too_large" // metric only: the connection is closed with 1009
)

// Protocol limits on client messages.
const (
	maxFilterValues = 16
	maxStringBytes  = 64
)

// Statistics a subscription may narrow the cells to.
var statistics = []string{"all", "p50", "p90", "p99", "mean"}

// subscription is what a client watches. Normalised (sorted, deduplicated,
// canonical names) so equal subscriptions share one group and one encoding.
type subscription struct {
	carriers     []string
	networkTypes []string
	window       int // index into Config.Windows
	statistic    string
}

// key identifies the subscription's group.
func (s subscription) key() string {
	return strings.Join(s.carriers, ",") + "|" + strings.Join(s.networkTypes, ",") + "|" + strconv.Itoa(s.window) + "|" + s.statistic
}

func (s subscription) matches(k pathstate.CellKey) bool {
	if len(s.carriers) > 0 && !slices.Contains(s.carriers, k.Carrier) {
		return false
	}
	if len(s.networkTypes) > 0 && !slices.Contains(s.networkTypes, k.NetworkType) {
		return false
	}
	return true
}

// requestKind is a parsed client message's type.
type requestKind int

const (
	reqSubscribe requestKind = iota + 1
	reqDrilldown
	reqDrilldownStop
	reqPing
)

// request is a validated client message.
type request struct {
	kind requestKind
	id   string
	sub  subscription // reqSubscribe
	cell string       // reqDrilldown
}

// protoError is a client mistake, answered with an error frame.
type protoError struct {
	code, msg, ref string
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

// wireMessage is the JSON shape of every client message.
type wireMessage struct {
	Type         *string  `json:"type"`
	V            *int     `json:"v"`
	ID           string   `json:"id"`
	Carriers     []string `json:"carriers"`
	NetworkTypes []string `json:"network_types"`
	Window       string   `json:"window"`
	Statistic    string   `json:"statistic"`
	Cell         string   `json:"cell"`
}

// parser validates client messages against the configured windows and the
// gazetteer (for canonical carrier and network type names).
type parser struct {
	windows []string // names, Config.Windows order
	defWin  int
	// gaz is swapped by Heatmap.SetGazetteer while connections parse.
	gaz atomic.Pointer[gazetteer.Gazetteer]
}

func newParser(windows []string, defWin int, gaz *gazetteer.Gazetteer) *parser {
	p := &parser{windows: windows, defWin: defWin}
	p.gaz.Store(gaz)
	return p
}

// parse validates one client message. It never panics on any input (see
// FuzzParseClientMessage) and names the offending field in its error.
func (p *parser) parse(data []byte) (*request, *protoError) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, &protoError{code: codeBadJSON, msg: "message is not a JSON object"}
	}
	var m wireMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			ref := ""
			if utf8.ValidString(m.ID) && len(m.ID) <= maxStringBytes {
				ref = m.ID
			}
			return nil, &protoError{code: codeBadField, msg: fmt.Sprintf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value), ref: ref}
		}
		return nil, &protoError{code: codeBadJSON, msg: "message is not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &protoError{code: codeBadJSON, msg: "message has data after the JSON object"}
	}
	if len(m.ID) > maxStringBytes || !utf8.ValidString(m.ID) {
		return nil, &protoError{code: codeBadField, msg: fmt.Sprintf("field \"id\": longer than %d bytes or not UTF-8", maxStringBytes)}
	}
	ref := m.ID
	if m.V != nil && *m.V != ProtocolVersion {
		return nil, &protoError{code: codeUnsupportedVer, msg: fmt.Sprintf("protocol version %d is not supported; this server speaks %d", *m.V, ProtocolVersion), ref: ref}
	}
	if m.Type == nil {
		return nil, &protoError{code: codeUnknownType, msg: "field \"type\" is missing", ref: ref}
	}
	r := &request{id: m.ID}
	switch *m.Type {
	case "subscribe":
		r.kind = reqSubscribe
		sub, perr := p.subscription(m.Carriers, m.NetworkTypes, m.Window, m.Statistic)
		if perr != nil {
			perr.ref = ref
			return nil, perr
		}
		r.sub = sub
	case "drilldown":
		r.kind = reqDrilldown
		if m.Cell == "" {
			return nil, &protoError{code: codeBadField, msg: "field \"cell\": missing (a cell id from a snapshot)", ref: ref}
		}
		if len(m.Cell) > 4*maxStringBytes+3 || !utf8.ValidString(m.Cell) {
			return nil, &protoError{code: codeBadField, msg: "field \"cell\": too long or not UTF-8", ref: ref}
		}
		r.cell = m.Cell
	case "drilldown_stop":
		r.kind = reqDrilldownStop
	case "ping":
		r.kind = reqPing
	default:
		t := *m.Type
		if len(t) > maxStringBytes || !utf8.ValidString(t) {
			t = t[:min(len(t), maxStringBytes)]
			t = strings.ToValidUTF8(t, "?")
		}
		return nil, &protoError{code: codeUnknownType, msg: fmt.Sprintf("unknown message type %q (want subscribe, drilldown, drilldown_stop or ping)", t), ref: ref}
	}
	return r, nil
}

// subscription validates filters, from a message or from URL parameters.
func (p *parser) subscription(carriers, networkTypes []string, window, statistic string) (subscription, *protoError) {
	var s subscription
	var perr *protoError
	gaz := p.gaz.Load()
	if s.carriers, perr = p.filter("carriers", carriers, gaz.Carrier); perr != nil {
		return s, perr
	}
	if s.networkTypes, perr = p.filter("network_types", networkTypes, gaz.NetworkType); perr != nil {
		return s, perr
	}
	s.window = p.defWin
	if window != "" {
		s.window = slices.Index(p.windows, window)
		if s.window < 0 {
			return s, &protoError{code: codeBadField, msg: fmt.Sprintf("field \"window\": %q is not one of %s", clip(window), strings.Join(p.windows, ", "))}
		}
	}
	s.statistic = "all"
	if statistic != "" {
		if !slices.Contains(statistics, statistic) {
			return s, &protoError{code: codeBadField, msg: fmt.Sprintf("field \"statistic\": %q is not one of %s", clip(statistic), strings.Join(statistics, ", "))}
		}
		s.statistic = statistic
	}
	return s, nil
}

func (p *parser) filter(field string, vals []string, canon func(string) (string, bool)) ([]string, *protoError) {
	if len(vals) > maxFilterValues {
		return nil, &protoError{code: codeBadField, msg: fmt.Sprintf("field %q: %d values, at most %d", field, len(vals), maxFilterValues)}
	}
	out := make([]string, 0, len(vals))
	for i, v := range vals {
		if v == "" || len(v) > maxStringBytes || !utf8.ValidString(v) {
			return nil, &protoError{code: codeBadField, msg: fmt.Sprintf("field %q[%d]: empty, longer than %d bytes or not UTF-8", field, i, maxStringBytes)}
		}
		// Aliases ("TM", "LTE") are accepted; unknown names are kept as given
		// because operators may register carriers the gazetteer lacks.
		if c, ok := canon(v); ok {
			v = c
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

func clip(s string) string {
	if len(s) > maxStringBytes {
		s = s[:maxStringBytes]
	}
	return strings.ToValidUTF8(s, "?")
}

// ---- frame encoding ------------------------------------------------------
//
// Frames are built by appending to byte slices rather than with
// encoding/json: a delta for thousands of cells is encoded once per group
// per tick, and this keeps it allocation-light and renders NaN as null.

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, `\u00`...)
				b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

func appendKey(b []byte, k string) []byte {
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

func appendFloats(b []byte, fs []float64) []byte {
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat(b, f)
	}
	return append(b, ']')
}

// appendCell renders one CELL for window wi, narrowed to statistic.
func appendCell(b []byte, v *cellView, wi int, statistic string) []byte {
	w := v.wins[wi]
	b = append(b, `{"id":`...)
	b = appendString(b, v.id)
	b = append(b, `,"src_city":`...)
	b = appendString(b, v.key.SrcCity)
	b = append(b, `,"dst_city":`...)
	b = appendString(b, v.key.DstCity)
	b = append(b, `,"carrier":`...)
	b = appendString(b, v.key.Carrier)
	b = append(b, `,"network_type":`...)
	b = appendString(b, v.key.NetworkType)
	for _, st := range [...]struct {
		name string
		v    float64
	}{{"p50", w.p50}, {"p90", w.p90}, {"p99", w.p99}, {"mean", w.mean}} {
		if statistic == "all" || statistic == st.name {
			b = append(b, ',')
			b = appendKey(b, st.name)
			b = appendFloat(b, st.v)
		}
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendUint(b, w.count, 10)
	b = append(b, `,"attempts":`...)
	b = appendFloat(b, w.attempts)
	b = append(b, `,"failures":`...)
	b = appendFloat(b, w.failures)
	b = append(b, `,"loss":`...)
	b = appendFloat(b, w.loss)
	b = append(b, `,"baseline_p50":`...)
	b = appendFloat(b, v.baseP50)
	b = append(b, `,"trend":`...)
	trend := math.NaN()
	if v.baseP50 > 0 {
		trend = round3(w.p50 / v.baseP50)
	}
	b = appendFloat(b, trend)
	b = append(b, `,"last_seen":`...)
	b = strconv.AppendInt(b, v.lastSeen, 10)
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, v.stale)
	b = append(b, `,"state":`...)
	b = appendString(b, v.state)
	return append(b, '}')
}

// appendColumn renders one drill-down column.
func appendColumn(b []byte, c *column) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, c.t, 10)
	b = append(b, `,"counts":`...)
	if c.counts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, n := range c.counts {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, n, 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendUint(b, c.count, 10)
	b = append(b, `,"p50":`...)
	b = appendFloat(b, c.p50)
	b = append(b, `,"mean":`...)
	b = appendFloat(b, c.mean)
	b = append(b, `,"attempts":`...)
	b = appendFloat(b, c.attempts)
	b = append(b, `,"failures":`...)
	b = appendFloat(b, c.failures)
	b = append(b, `,"loss":`...)
	b = appendFloat(b, c.loss)
	return append(b, '}')
}

// appendHead starts a frame: {"v":1,"type":"...".
func appendHead(b []byte, typ string) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, ProtocolVersion, 10)
	b = append(b, `,"type":`...)
	return appendString(b, typ)
}

func errorFrame(e *protoError) []byte {
	b := appendHead(nil, "error")
	b = append(b, `,"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.msg)
	if e.ref != "" {
		b = append(b, `,"ref":`...)
		b = appendString(b, e.ref)
	}
	return append(b, '}')
}

func pongFrame(id string, nowMs int64) []byte {
	b := appendHead(nil, "pong")
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, nowMs, 10)
	return append(b, '}')
}

func drilldownEndFrame(id, reason string) []byte {
	b := appendHead(nil, "drilldown_end")
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	return append(b, '}')
}
