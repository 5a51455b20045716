package echo

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := Packet{Kind: KindRequest, Sequence: 1<<63 + 7, SentUnixNano: -42, ProbeID: "mnl-01"}
	b, err := Append(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != HeaderLen+len(in.ProbeID) {
		t.Fatalf("len %d", len(b))
	}
	out, err := Decode(b)
	if err != nil || out != in {
		t.Fatalf("Decode = %+v, %v; want %+v", out, err, in)
	}
	if err := MakeReply(b); err != nil {
		t.Fatal(err)
	}
	out, _ = Decode(b)
	if out.Kind != KindReply || out.Sequence != in.Sequence {
		t.Fatalf("reply = %+v", out)
	}
	if err := MakeReply(b); !errors.Is(err, ErrKind) {
		t.Fatalf("a reply must not be answered again, got %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := Append(nil, Packet{Sequence: 1, ProbeID: "p"})
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:10], ErrShort},
		{"magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMagic},
		{"version", mut(func(b []byte) []byte { b[4] = 9; return b }), ErrVersion},
		{"kind", mut(func(b []byte) []byte { b[5] = 7; return b }), ErrKind},
		{"id too long for packet", mut(func(b []byte) []byte { b[6] = 2; return b }), ErrLength},
		{"trailing bytes", append(bytes.Clone(good), 'x'), ErrLength},
		{"empty id", good[:HeaderLen], ErrLength},
	}
	for _, tc := range cases {
		if _, err := Decode(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Append(nil, Packet{ProbeID: string(make([]byte, MaxIDLen+1))}); err == nil {
		t.Error("Append accepted an over-long probe id")
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Append(nil, Packet{Sequence: 3, SentUnixNano: 99, ProbeID: "dvo-01"})
	f.Add(good)
	f.Add([]byte("BNTY"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes.
		again, err := Append(nil, p)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", p, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}

func BenchmarkAppendDecode(b *testing.B) {
	p := Packet{Kind: KindRequest, Sequence: 1, SentUnixNano: 2, ProbeID: "mnl-01"}
	buf := make([]byte, 0, MaxLen)
	b.ReportAllocs()
	for b.Loop() {
		out, _ := Append(buf[:0], p)
		if _, err := Decode(out); err != nil {
			b.Fatal(err)
		}
	}
}
