package wire

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/gazetteer"
)

func testParser() *Parser {
	return NewParser([]string{"1m", "5m", "15m"}, 1, gazetteer.Default())
}

func TestParseClientMessages(t *testing.T) {
	p := testParser()
	r, perr := p.Parse([]byte(`{"type":"subscribe","id":"a","carriers":["Smart","TNT","Globe Telecom"],"network_types":["LTE"],"window":"15m","statistic":"p99","future_field":1}`))
	if perr != nil {
		t.Fatal(perr)
	}
	// Aliases fold to canonical names and duplicates collapse; unknown
	// fields are ignored (forward compatibility).
	if r.Kind != ReqSubscribe || strings.Join(r.Sub.Carriers, ",") != "Globe,Smart" || strings.Join(r.Sub.NetworkTypes, ",") != "4g" || r.Sub.Window != 2 || r.Sub.Statistic != "p99" {
		t.Fatalf("parsed %+v", r)
	}
	if r, perr := p.Parse([]byte(`{"type":"subscribe"}`)); perr != nil || r.Sub.Window != 1 || r.Sub.Statistic != "all" {
		t.Fatalf("defaults: %+v %v", r, perr)
	}
	many := `{"type":"subscribe","carriers":[` + strings.Repeat(`"x",`, 16) + `"y"]}`
	if _, perr := p.Parse([]byte(many)); perr == nil || perr.Code != CodeBadField || !strings.Contains(perr.Msg, "17 values") {
		t.Fatalf("17 carriers: %v", perr)
	}
	if _, perr := p.Parse([]byte(`{"type":"drilldown"}`)); perr == nil || !strings.Contains(perr.Msg, `"cell"`) {
		t.Fatalf("drilldown without cell: %v", perr)
	}
	if _, perr := p.Parse([]byte(`{"type":"ping"} {"type":"ping"}`)); perr == nil || perr.Code != CodeBadJSON {
		t.Fatalf("two objects: %v", perr)
	}
}

func TestFrameEncodingIsValidJSON(t *testing.T) {
	v := &aggregate.View{ID: "A\"b|c\\d|\x01e|\xff", Key: pathstate.CellKey{SrcCity: "A\"b", DstCity: "c\\d", Carrier: "\x01e", NetworkType: "\xff"},
		Wins:    []aggregate.Stats{{P50: math.NaN(), P90: 1.5, P99: math.Inf(1), Mean: 2, Count: 3, Attempts: 4, Failures: 1, Loss: 0.25, Jitter: math.NaN()}},
		BaseP50: 1, LastSeen: 42, State: "ok"}
	b := AppendCell(nil, v, 0, "all")
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if m["p50"] != nil || m["p99"] != nil || m["p90"] != 1.5 || m["src_city"] != "A\"b" || m["network_type"] != "\ufffd" {
		t.Fatalf("decoded %v", m)
	}
	// No jitter (no two answers in a round) is null, present, not 0.
	if j, ok := m["jitter"]; !ok || j != nil || m["loss"] != 0.25 {
		t.Fatalf("jitter %v (present %v), loss %v: want null beside the loss", j, ok, m["loss"])
	}
}

func TestColumnCarriesLossAndJitter(t *testing.T) {
	c := &aggregate.Column{T: 15000, Count: 4, P50: 3, Mean: 3.5, Attempts: 5, Failures: 1, Loss: 0.2, Jitter: 1.25}
	var m map[string]any
	if err := json.Unmarshal(AppendColumn(nil, c), &m); err != nil {
		t.Fatal(err)
	}
	if m["loss"] != 0.2 || m["jitter"] != 1.25 || m["counts"] != nil {
		t.Fatalf("column %v, want loss 0.2, jitter 1.25 and counts null", m)
	}
}

// FuzzParseClientMessage feeds arbitrary bytes to the client-message Parser:
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
		r, perr := p.Parse(data)
		if (r == nil) == (perr == nil) {
			t.Fatalf("want exactly one of request and error, got %v and %v", r, perr)
		}
		if perr != nil {
			if perr.Code == "" || perr.Msg == "" {
				t.Fatalf("error without code or message: %+v", perr)
			}
			if frame := ErrorFrame(perr); !json.Valid(frame) {
				t.Fatalf("error frame is not valid JSON: %q", frame)
			}
			return
		}
		switch r.Kind {
		case ReqSubscribe:
			if r.Sub.Window < 0 || r.Sub.Window >= len(p.windows) || len(r.Sub.Carriers) > maxFilterValues || len(r.Sub.NetworkTypes) > maxFilterValues {
				t.Fatalf("accepted an invalid subscription %+v", r.Sub)
			}
		case ReqDrilldown:
			if r.Cell == "" || !utf8.ValidString(r.Cell) {
				t.Fatalf("accepted drilldown cell %q", r.Cell)
			}
		case ReqDrilldownStop, ReqPing:
		default:
			t.Fatalf("unknown request kind %d", r.Kind)
		}
		if len(r.ID) > maxStringBytes {
			t.Fatalf("accepted id of %d bytes", len(r.ID))
		}
	})
}
