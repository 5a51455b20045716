package reflector

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/probes/echo"
)

func start(t *testing.T, logger *slog.Logger) (*Reflector, chan error) {
	t.Helper()
	r, err := Listen("127.0.0.1:0", logger)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return r, done
}

func TestReflectsRequestsAndDropsGarbage(t *testing.T) {
	var logs bytes.Buffer
	r, _ := start(t, slog.New(slog.NewTextHandler(&logs, nil)))
	c, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))

	garbage := [][]byte{[]byte("hello"), bytes.Repeat([]byte("x"), 40), make([]byte, 2000)}
	reply, _ := echo.Append(nil, echo.Packet{Kind: echo.KindReply, Sequence: 1, ProbeID: "x"})
	garbage = append(garbage, reply) // a reply must never be answered
	for _, g := range garbage {
		if _, err := c.Write(g); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := echo.Append(nil, echo.Packet{Kind: echo.KindRequest, Sequence: 77, SentUnixNano: 5, ProbeID: "mnl-01"})
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	// The only answer must be the reply to the one request (UDP on loopback
	// keeps order, so garbage answers would arrive first).
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := echo.Decode(buf[:n])
	if err != nil || p.Kind != echo.KindReply || p.Sequence != 77 || p.ProbeID != "mnl-01" || p.SentUnixNano != 5 {
		t.Fatalf("reply %+v, %v", p, err)
	}
	// The counter moves after the send returns, which may be after the
	// reply arrived here.
	s := r.Stats()
	for deadline := time.Now().Add(5 * time.Second); s.Reflected == 0 && time.Now().Before(deadline); s = r.Stats() {
		time.Sleep(time.Millisecond)
	}
	if s.Received != 5 || s.Reflected != 1 {
		t.Errorf("stats %+v", s)
	}
	if s.Dropped[DropShort] != 1 || s.Dropped[DropMagic] != 1 || s.Dropped[DropTooLarge] != 1 || s.Dropped[DropKind] != 1 {
		t.Errorf("dropped %+v", s.Dropped)
	}
	// Four dropped packets, one log line: the log is rate limited.
	if got := bytes.Count(logs.Bytes(), []byte("dropping packets")); got != 1 {
		t.Errorf("garbage logged %d times, want once:\n%s", got, logs.String())
	}
}

func TestCloseStopsServe(t *testing.T) {
	r, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(context.Background()) }()
	r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// FuzzHandle feeds arbitrary datagrams to the reflector's packet handling:
// it must never panic, must answer only valid requests, and its answer must
// be a valid reply carrying the same sequence and probe id.
func FuzzHandle(f *testing.F) {
	req, _ := echo.Append(nil, echo.Packet{Sequence: 9, ProbeID: "bag-01"})
	f.Add(req)
	f.Add([]byte{})
	f.Add([]byte("BNTY\x01\x00\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		reqPkt, reqErr := echo.Decode(in)
		reply, reason := handle(b)
		if reason != "" {
			if reply != nil {
				t.Fatal("dropped packet has a reply")
			}
			if reqErr == nil && reqPkt.Kind == echo.KindRequest && len(in) <= echo.MaxLen {
				t.Fatalf("valid request dropped as %s", reason)
			}
			return
		}
		if reqErr != nil || reqPkt.Kind != echo.KindRequest {
			t.Fatalf("answered a non-request (%v)", reqErr)
		}
		p, err := echo.Decode(reply)
		if err != nil || p.Kind != echo.KindReply || p.Sequence != reqPkt.Sequence || p.ProbeID != reqPkt.ProbeID {
			t.Fatalf("bad reply %+v, %v", p, err)
		}
	})
}

// BenchmarkHandle is the per-packet cost of the reflector's validation and
// reply, without the socket.
func BenchmarkHandle(b *testing.B) {
	req, _ := echo.Append(nil, echo.Packet{Sequence: 1, ProbeID: "mnl-01"})
	buf := make([]byte, len(req))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, req)
		if _, reason := handle(buf); reason != "" {
			b.Fatal(reason)
		}
	}
}

// TestEchoesSequenceNumbersAsTheyCome: a probe's round counts loss,
// duplicates and reordering from the sequence numbers of the replies, so
// the reflector must keep no state of its own about them: every request,
// a repeated one too, is answered once with its sequence number, send
// time and probe id unchanged, in the order it came.
func TestEchoesSequenceNumbersAsTheyCome(t *testing.T) {
	r, _ := start(t, nil)
	c, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	seqs := []uint64{1<<63 - 2, 1<<63 - 1, 1 << 63, 1 << 63, 3} // across the top bit, a repeat, a jump back
	for i, s := range seqs {
		req, _ := echo.Append(nil, echo.Packet{Kind: echo.KindRequest, Sequence: s, SentUnixNano: int64(i), ProbeID: "dvo-01"})
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, echo.MaxLen+1)
	for i, s := range seqs {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		got, err := echo.Decode(buf[:n])
		want := echo.Packet{Kind: echo.KindReply, Sequence: s, SentUnixNano: int64(i), ProbeID: "dvo-01"}
		if err != nil || got != want {
			t.Fatalf("reply %d: %+v (%v), want %+v", i, got, err, want)
		}
	}
}
