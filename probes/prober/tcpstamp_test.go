package prober

import (
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// fakeKernelConn is a kernelConn whose kernel times the test sets.
type fakeKernelConn struct {
	net.Conn
	handshake time.Duration
	sent      []time.Time
}

func (f fakeKernelConn) handshakeRTT() time.Duration { return f.handshake }
func (f fakeKernelConn) mark() connMark              { return connMark{} }
func (f fakeKernelConn) sentAt(i int) time.Time {
	if i < len(f.sent) {
		return f.sent[i]
	}
	return time.Time{}
}

// TestHTTPKernelPhases: over TLS the phases are the handshake's RTT, the
// ClientHello's transmission (write 0) to the last handshake read, the
// request's (the first write after the handshake's two) to the response's
// first segment, and that to the body's last; a missing time, a phase
// that goes backwards (a wall-clock step) or phases longer than the
// clock's total fall back to the clock's phases.
func TestHTTPKernelPhases(t *testing.T) {
	at := func(ms float64) time.Time { return time.Unix(1e9, int64(ms*1e6)) }
	trace := func(conn net.Conn) *httpTrace {
		return &httpTrace{
			start: at(0), connectDone: at(12), tlsDone: at(30), firstByte: at(60), conn: conn,
			tlsMark:       connMark{writes: 2, lastRead: at(27)},
			firstByteMark: connMark{writes: 3, readFirst: at(55), lastRead: at(58)},
			endMark:       connMark{writes: 3, readFirst: at(58), lastRead: at(59)},
		}
	}
	conn := fakeKernelConn{handshake: 10 * time.Millisecond, sent: []time.Time{at(11), at(28), at(29)}}
	phases, ok := trace(conn).kernelPhases(at(61))
	want := []Phase{{PhaseConnect, 10 * time.Millisecond}, {PhaseTLS, 16 * time.Millisecond}, {PhaseProcessing, 26 * time.Millisecond}, {PhaseTransfer, 4 * time.Millisecond}}
	if !ok || len(phases) != len(want) {
		t.Fatalf("kernel phases %v, %v; want %v", phases, ok, want)
	}
	for i := range want {
		if phases[i] != want[i] {
			t.Errorf("phase %d is %v, want %v", i, phases[i], want[i])
		}
	}

	for name, tr := range map[string]*httpTrace{
		"no kernel times":           trace(nil),
		"no request timestamp":      trace(fakeKernelConn{handshake: 10 * time.Millisecond, sent: []time.Time{at(11), at(28)}}),
		"a phase backwards":         trace(fakeKernelConn{handshake: 10 * time.Millisecond, sent: []time.Time{at(11), at(28), at(56)}}),
		"longer than the total":     trace(fakeKernelConn{handshake: 50 * time.Millisecond, sent: []time.Time{at(11), at(28), at(29)}}),
		"no write after handshake":  func() *httpTrace { tr := trace(conn); tr.firstByteMark.writes = 2; return tr }(),
		"no response segment timed": func() *httpTrace { tr := trace(conn); tr.firstByteMark.readFirst = time.Time{}; return tr }(),
	} {
		if phases, ok := tr.kernelPhases(at(61)); ok {
			t.Errorf("%s: kernel phases %v, want the clock's", name, phases)
		}
	}
}

// TestKernelTimedTCPAndHTTP: on Linux the tcp prober's RTT and http's
// connect phase are TCP_INFO's handshake RTT, a whole number of
// microseconds (the clock around the dial gives nanoseconds: before, this
// failed).
func TestKernelTimedTCPAndHTTP(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_INFO is Linux's")
	}
	addr := closingListener(t, "127.0.0.1:0")
	for range 3 {
		rtt, _, err := probe(t, NewTCP(addr, Options{}), 5*time.Second)
		if err != nil || rtt%time.Microsecond != 0 {
			t.Errorf("tcp RTT %v (%v), want TCP_INFO's whole microseconds", rtt, err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	res, _, err := probeResult(t, NewHTTP(srv.URL, 0, false, Options{}), 5*time.Second)
	if err != nil || len(res.Phases) != 3 || res.Phases[0].Name != PhaseConnect || res.Phases[0].Duration%time.Microsecond != 0 {
		t.Errorf("http phases %v (%v), want connect at TCP_INFO's whole microseconds, processing, transfer", res.Phases, err)
	}
}
