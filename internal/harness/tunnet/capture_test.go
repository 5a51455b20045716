//go:build linux

package tunnet

import (
	"testing"
	"time"
)

// Trips pairs a request with the first reply of its identifier and
// sequence after it: a duplicate reply is not a second trip, an unanswered
// request is a lost one, and a reply to a request sent before the capture
// began is nobody's.
func TestTrips(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	echoes := []Echo{
		{At: at(0), ID: 7, Seq: 9}, // reply to a request the capture never saw
		{At: at(1), Out: true, ID: 7, Seq: 1},
		{At: at(2), Out: true, ID: 7, Seq: 2},
		{At: at(3), Out: true, ID: 8, Seq: 1},
		{At: at(12), ID: 7, Seq: 2},
		{At: at(13), ID: 7, Seq: 2}, // duplicate
		{At: at(14), ID: 8, Seq: 1},
	}
	rtts, lost := RTTs(Trips(echoes), time.Second)
	want := []time.Duration{10 * time.Millisecond, 11 * time.Millisecond}
	if lost != 1 || len(rtts) != 2 || rtts[0] != want[0] || rtts[1] != want[1] {
		t.Errorf("RTTs %v, %d lost; want %v and 1 lost", rtts, lost, want)
	}
	// A reply after the timeout is a loss to the prober that waited.
	if rtts, lost := RTTs(Trips(echoes), 10*time.Millisecond); lost != 2 || len(rtts) != 1 {
		t.Errorf("with a 10 ms timeout: RTTs %v, %d lost; want one answered and 2 lost", rtts, lost)
	}
}

func TestParseEcho(t *testing.T) {
	req := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 8, 0, 0, 0, 0x12, 0x34, 0, 5}
	e, ok := parseEcho(req)
	if !ok || e.ID != 0x1234 || e.Seq != 5 {
		t.Errorf("parseEcho(request) = %+v, %v; want id 0x1234 seq 5", e, ok)
	}
	reply, ok := EchoReply(req)
	if !ok {
		t.Fatal("EchoReply refused an echo request")
	}
	if e, ok := parseEcho(reply); !ok || e.ID != 0x1234 || e.Seq != 5 || reply[20] != 0 {
		t.Errorf("parseEcho(reply) = %+v, %v (type %d)", e, ok, reply[20])
	}
	if _, ok := parseEcho(req[:24]); ok {
		t.Error("a truncated ICMP header parsed")
	}
}
