package heatmap

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

func testParser() *parser {
	return newParser([]string{"1m", "5m", "15m"}, 1, gazetteer.Default())
}

func TestParseClientMessages(t *testing.T) {
	p := testParser()
	r, perr := p.parse([]byte(`{"type":"subscribe","id":"a","carriers":["Smart","TNT","Globe Telecom"],"network_types":["LTE"],"window":"15m","statistic":"p99","future_field":1}`))
	if perr != nil {
		t.Fatal(perr)
	}
	// Aliases fold to canonical names and duplicates collapse; unknown
	// fields are ignored (forward compatibility).
	if r.kind != reqSubscribe || strings.Join(r.sub.carriers, ",") != "Globe,Smart" || strings.Join(r.sub.networkTypes, ",") != "4g" || r.sub.window != 2 || r.sub.statistic != "p99" {
		t.Fatalf("parsed %+v", r)
	}
	if r, perr := p.parse([]byte(`{"type":"subscribe"}`)); perr != nil || r.sub.window != 1 || r.sub.statistic != "all" {
		t.Fatalf("defaults: %+v %v", r, perr)
	}
	many := `{"type":"subscribe","carriers":[` + strings.Repeat(`"x",`, 16) + `"y"]}`
	if _, perr := p.parse([]byte(many)); perr == nil || perr.code != codeBadField || !strings.Contains(perr.msg, "17 values") {
		t.Fatalf("17 carriers: %v", perr)
	}
	if _, perr := p.parse([]byte(`{"type":"drilldown"}`)); perr == nil || !strings.Contains(perr.msg, `"cell"`) {
		t.Fatalf("drilldown without cell: %v", perr)
	}
	if _, perr := p.parse([]byte(`{"type":"ping"} {"type":"ping"}`)); perr == nil || perr.code != codeBadJSON {
		t.Fatalf("two objects: %v", perr)
	}
}

func TestFrameEncodingIsValidJSON(t *testing.T) {
	v := &cellView{id: "A\"b|c\\d|\x01e|\xff", key: pathstate.CellKey{SrcCity: "A\"b", DstCity: "c\\d", Carrier: "\x01e", NetworkType: "\xff"},
		wins:    []winStats{{p50: math.NaN(), p90: 1.5, p99: math.Inf(1), mean: 2, count: 3, attempts: 4, failures: 1, loss: 0.25}},
		baseP50: 1, lastSeen: 42, state: "ok"}
	b := appendCell(nil, v, 0, "all")
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if m["p50"] != nil || m["p99"] != nil || m["p90"] != 1.5 || m["src_city"] != "A\"b" || m["network_type"] != "\ufffd" {
		t.Fatalf("decoded %v", m)
	}
}

// FuzzParseClientMessage feeds arbitrary bytes to the client-message parser:
// it must never panic, accept only well-formed requests, and describe every
// rejection with a code and a message that encode to valid JSON.
func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","id":"s1","carriers":["Globe"],"network_types":["5g"],"window":"5m","statistic":"p50"}`,
		`{"type":"drilldown","id":"d","cell":"Manila|Davao|Globe|5g"}`,
		`{"type":"drilldown_stop"}`, `{"type":"ping","id":"p","v":1}`, `{"type":"ping","v":2}`,
		`{"type":"subscribe","carriers":"Globe"}`, `{"type":7}`, `{`, `[]`, `null`, "\xff{", `{"type":"subscribe","window":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	p := testParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, perr := p.parse(data)
		if (r == nil) == (perr == nil) {
			t.Fatalf("want exactly one of request and error, got %v and %v", r, perr)
		}
		if perr != nil {
			if perr.code == "" || perr.msg == "" {
				t.Fatalf("error without code or message: %+v", perr)
			}
			if frame := errorFrame(perr); !json.Valid(frame) {
				t.Fatalf("error frame is not valid JSON: %q", frame)
			}
			return
		}
		switch r.kind {
		case reqSubscribe:
			if r.sub.window < 0 || r.sub.window >= len(p.windows) || len(r.sub.carriers) > maxFilterValues || len(r.sub.networkTypes) > maxFilterValues {
				t.Fatalf("accepted an invalid subscription %+v", r.sub)
			}
		case reqDrilldown:
			if r.cell == "" || !utf8.ValidString(r.cell) {
				t.Fatalf("accepted drilldown cell %q", r.cell)
			}
		case reqDrilldownStop, reqPing:
		default:
			t.Fatalf("unknown request kind %d", r.kind)
		}
		if len(r.id) > maxStringBytes {
			t.Fatalf("accepted id of %d bytes", len(r.id))
		}
	})
}
