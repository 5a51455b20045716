// Package wire is the heatmap's websocket protocol, version 1
// (docs/websocket-protocol.md): it validates client messages (Parser) and
// encodes every server frame (snapshot and delta parts, drill-down,
// events, error, pong) by appending to byte slices. It holds no state
// and does no I/O; heatmap/hub sends what it encodes.
package wire

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

	"github.com/bantay-noc/bantay/heatmap/aggregate"
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
	CodeBadJSON           = "bad_json"
	CodeUnknownType       = "unknown_type"
	CodeBadField          = "bad_field"
	CodeUnsupportedVer    = "unsupported_version"
	CodeUnknownCell       = "unknown_cell"
	CodeRateLimited       = "rate_limited"
	CodeBinaryUnsupported = "binary_unsupported"
	CodeTooLarge          = "too_large" // metric only: the connection is closed with 1009
)

// Protocol limits on client messages.
const (
	maxFilterValues = 16
	maxStringBytes  = 64
)

// Statistics a Subscription may narrow the cells to.
var statistics = []string{"all", "p50", "p90", "p99", "mean"}

// Subscription is what a client watches. Normalised (sorted, deduplicated,
// canonical names) so equal subscriptions share one group and one encoding.
type Subscription struct {
	Carriers     []string
	NetworkTypes []string
	Window       int // index into the configured windows
	Statistic    string
}

// Key identifies the subscription: equal subscriptions have equal keys.
func (s Subscription) Key() string {
	return strings.Join(s.Carriers, ",") + "|" + strings.Join(s.NetworkTypes, ",") + "|" + strconv.Itoa(s.Window) + "|" + s.Statistic
}

// Matches reports whether the cell passes the subscription's filters.
func (s Subscription) Matches(k pathstate.CellKey) bool {
	if len(s.Carriers) > 0 && !slices.Contains(s.Carriers, k.Carrier) {
		return false
	}
	if len(s.NetworkTypes) > 0 && !slices.Contains(s.NetworkTypes, k.NetworkType) {
		return false
	}
	return true
}

// RequestKind is a parsed client message's type.
type RequestKind int

const (
	ReqSubscribe RequestKind = iota + 1
	ReqDrilldown
	ReqDrilldownStop
	ReqPing
)

// Request is a validated client message.
type Request struct {
	Kind RequestKind
	ID   string
	Sub  Subscription // ReqSubscribe
	Cell string       // ReqDrilldown
}

// Error is a client mistake, answered with an error frame.
type Error struct {
	Code string // one of the Code constants
	Msg  string // names the offending field
	Ref  string // the request's id, if it had a usable one
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

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

// Parser validates client messages against the configured windows and the
// gazetteer (for canonical carrier and network type names).
type Parser struct {
	windows []string // names, in the configured order
	defWin  int
	// gaz is swapped (SetGazetteer) while connections parse.
	gaz atomic.Pointer[gazetteer.Gazetteer]
}

// NewParser returns a parser for the windows (as the protocol names them,
// pathstate.WindowName) of which defWin is the default, canonicalising
// filters with gaz.
func NewParser(windows []string, defWin int, gaz *gazetteer.Gazetteer) *Parser {
	p := &Parser{windows: windows, defWin: defWin}
	p.gaz.Store(gaz)
	return p
}

// Windows are the window names, in the configured order.
func (p *Parser) Windows() []string { return p.windows }

// DefaultWindow is the index of the window a subscription gets by default.
func (p *Parser) DefaultWindow() int { return p.defWin }

// Gazetteer is the gazetteer filters are canonicalised with now.
func (p *Parser) Gazetteer() *gazetteer.Gazetteer { return p.gaz.Load() }

// SetGazetteer replaces it; safe while other goroutines parse.
func (p *Parser) SetGazetteer(g *gazetteer.Gazetteer) { p.gaz.Store(g) }

// Parse validates one client message. It never panics on any input (see
// FuzzParseClientMessage) and names the offending field in its error.
func (p *Parser) Parse(data []byte) (*Request, *Error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, &Error{Code: CodeBadJSON, Msg: "message is not a JSON object"}
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
			return nil, &Error{Code: CodeBadField, Msg: fmt.Sprintf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value), Ref: ref}
		}
		return nil, &Error{Code: CodeBadJSON, Msg: "message is not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &Error{Code: CodeBadJSON, Msg: "message has data after the JSON object"}
	}
	if len(m.ID) > maxStringBytes || !utf8.ValidString(m.ID) {
		return nil, &Error{Code: CodeBadField, Msg: fmt.Sprintf("field \"id\": longer than %d bytes or not UTF-8", maxStringBytes)}
	}
	ref := m.ID
	if m.V != nil && *m.V != ProtocolVersion {
		return nil, &Error{Code: CodeUnsupportedVer, Msg: fmt.Sprintf("protocol version %d is not supported; this server speaks %d", *m.V, ProtocolVersion), Ref: ref}
	}
	if m.Type == nil {
		return nil, &Error{Code: CodeUnknownType, Msg: "field \"type\" is missing", Ref: ref}
	}
	r := &Request{ID: m.ID}
	switch *m.Type {
	case "subscribe":
		r.Kind = ReqSubscribe
		sub, perr := p.Subscription(m.Carriers, m.NetworkTypes, m.Window, m.Statistic)
		if perr != nil {
			perr.Ref = ref
			return nil, perr
		}
		r.Sub = sub
	case "drilldown":
		r.Kind = ReqDrilldown
		if m.Cell == "" {
			return nil, &Error{Code: CodeBadField, Msg: "field \"cell\": missing (a cell id from a snapshot)", Ref: ref}
		}
		if len(m.Cell) > 4*maxStringBytes+3 || !utf8.ValidString(m.Cell) {
			return nil, &Error{Code: CodeBadField, Msg: "field \"cell\": too long or not UTF-8", Ref: ref}
		}
		r.Cell = m.Cell
	case "drilldown_stop":
		r.Kind = ReqDrilldownStop
	case "ping":
		r.Kind = ReqPing
	default:
		t := *m.Type
		if len(t) > maxStringBytes || !utf8.ValidString(t) {
			t = t[:min(len(t), maxStringBytes)]
			t = strings.ToValidUTF8(t, "?")
		}
		return nil, &Error{Code: CodeUnknownType, Msg: fmt.Sprintf("unknown message type %q (want subscribe, drilldown, drilldown_stop or ping)", t), Ref: ref}
	}
	return r, nil
}

// Subscription validates filters, from a message or from URL parameters.
func (p *Parser) Subscription(carriers, networkTypes []string, window, statistic string) (Subscription, *Error) {
	var s Subscription
	var perr *Error
	gaz := p.gaz.Load()
	if s.Carriers, perr = p.filter("carriers", carriers, gaz.Carrier); perr != nil {
		return s, perr
	}
	if s.NetworkTypes, perr = p.filter("network_types", networkTypes, gaz.NetworkType); perr != nil {
		return s, perr
	}
	s.Window = p.defWin
	if window != "" {
		s.Window = slices.Index(p.windows, window)
		if s.Window < 0 {
			return s, &Error{Code: CodeBadField, Msg: fmt.Sprintf("field \"window\": %q is not one of %s", clip(window), strings.Join(p.windows, ", "))}
		}
	}
	s.Statistic = "all"
	if statistic != "" {
		if !slices.Contains(statistics, statistic) {
			return s, &Error{Code: CodeBadField, Msg: fmt.Sprintf("field \"statistic\": %q is not one of %s", clip(statistic), strings.Join(statistics, ", "))}
		}
		s.Statistic = statistic
	}
	return s, nil
}

func (p *Parser) filter(field string, vals []string, canon func(string) (string, bool)) ([]string, *Error) {
	if len(vals) > maxFilterValues {
		return nil, &Error{Code: CodeBadField, Msg: fmt.Sprintf("field %q: %d values, at most %d", field, len(vals), maxFilterValues)}
	}
	out := make([]string, 0, len(vals))
	for i, v := range vals {
		if v == "" || len(v) > maxStringBytes || !utf8.ValidString(v) {
			return nil, &Error{Code: CodeBadField, Msg: fmt.Sprintf("field %q[%d]: empty, longer than %d bytes or not UTF-8", field, i, maxStringBytes)}
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

// Quote renders s as a JSON string, clipped to the protocol's string
// limit, for messages that echo what a client sent.
func Quote(s string) string {
	return string(AppendString(nil, clip(s)))
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

func AppendString(b []byte, s string) []byte {
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

func AppendFloat(b []byte, v float64) []byte {
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

func AppendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

func AppendFloats(b []byte, fs []float64) []byte {
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendFloat(b, f)
	}
	return append(b, ']')
}

// AppendCell renders one CELL for window wi, narrowed to statistic.
func AppendCell(b []byte, v *aggregate.View, wi int, statistic string) []byte {
	w := v.Wins[wi]
	b = append(b, `{"id":`...)
	b = AppendString(b, v.ID)
	b = append(b, `,"src_city":`...)
	b = AppendString(b, v.Key.SrcCity)
	b = append(b, `,"dst_city":`...)
	b = AppendString(b, v.Key.DstCity)
	b = append(b, `,"carrier":`...)
	b = AppendString(b, v.Key.Carrier)
	b = append(b, `,"network_type":`...)
	b = AppendString(b, v.Key.NetworkType)
	for _, st := range [...]struct {
		name string
		v    float64
	}{{"p50", w.P50}, {"p90", w.P90}, {"p99", w.P99}, {"mean", w.Mean}} {
		if statistic == "all" || statistic == st.name {
			b = append(b, ',')
			b = appendKey(b, st.name)
			b = AppendFloat(b, st.v)
		}
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendUint(b, w.Count, 10)
	b = append(b, `,"attempts":`...)
	b = AppendFloat(b, w.Attempts)
	b = append(b, `,"failures":`...)
	b = AppendFloat(b, w.Failures)
	b = append(b, `,"loss":`...)
	b = AppendFloat(b, w.Loss)
	b = append(b, `,"jitter":`...)
	b = AppendFloat(b, w.Jitter)
	b = append(b, `,"baseline_p50":`...)
	b = AppendFloat(b, v.BaseP50)
	b = append(b, `,"trend":`...)
	b = AppendFloat(b, v.Trend(wi))
	b = append(b, `,"last_seen":`...)
	b = strconv.AppendInt(b, v.LastSeen, 10)
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, v.Stale)
	b = append(b, `,"state":`...)
	b = AppendString(b, v.State)
	return append(b, '}')
}

// AppendColumn renders one drill-down column.
func AppendColumn(b []byte, c *aggregate.Column) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, c.T, 10)
	b = append(b, `,"counts":`...)
	if c.Counts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, n := range c.Counts {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, n, 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendUint(b, c.Count, 10)
	b = append(b, `,"late":`...)
	b = strconv.AppendUint(b, uint64(c.Late), 10)
	b = append(b, `,"p50":`...)
	b = AppendFloat(b, c.P50)
	b = append(b, `,"mean":`...)
	b = AppendFloat(b, c.Mean)
	b = append(b, `,"attempts":`...)
	b = AppendFloat(b, c.Attempts)
	b = append(b, `,"failures":`...)
	b = AppendFloat(b, c.Failures)
	b = append(b, `,"loss":`...)
	b = AppendFloat(b, c.Loss)
	b = append(b, `,"jitter":`...)
	b = AppendFloat(b, c.Jitter)
	return append(b, '}')
}

// AppendHead starts a frame: {"v":1,"type":"...".
func AppendHead(b []byte, typ string) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, ProtocolVersion, 10)
	b = append(b, `,"type":`...)
	return AppendString(b, typ)
}

func ErrorFrame(e *Error) []byte {
	b := AppendHead(nil, "error")
	b = append(b, `,"code":`...)
	b = AppendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Msg)
	if e.Ref != "" {
		b = append(b, `,"ref":`...)
		b = AppendString(b, e.Ref)
	}
	return append(b, '}')
}

func PongFrame(id string, nowMs int64) []byte {
	b := AppendHead(nil, "pong")
	b = append(b, `,"id":`...)
	b = AppendString(b, id)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, nowMs, 10)
	return append(b, '}')
}

func DrilldownEndFrame(id, reason string) []byte {
	b := AppendHead(nil, "drilldown_end")
	b = append(b, `,"id":`...)
	b = AppendString(b, id)
	b = append(b, `,"reason":`...)
	b = AppendString(b, reason)
	return append(b, '}')
}
