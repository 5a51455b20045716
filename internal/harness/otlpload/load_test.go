package otlpload

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestLoadCountsUnreachable: flat out against a port nobody listens on,
// every export is counted as refused with reason unreachable and the
// transport's message, and nothing as acknowledged.
func TestLoadCountsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	fleet, err := NewFleet(2, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := NewSender(GRPC, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	load := &Load{Streams: Streams(fleet, time.Now()), Sender: sender, Concurrency: 2, Duration: 300 * time.Millisecond, Timeout: time.Second}
	rep, err := load.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 0 || rep.Sent == 0 || rep.Refused["unreachable"] != rep.Sent || !strings.Contains(rep.Examples["unreachable"], "connection refused") {
		t.Fatalf("sent %d, acked %d, refused %v %v", rep.Sent, rep.Acked, rep.Refused, rep.Examples)
	}
}

// TestLoadValidate names the bad field.
func TestLoadValidate(t *testing.T) {
	fleet, _ := NewFleet(1, 1, 1)
	sender, err := NewSender(GRPC, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	for _, tc := range []struct {
		mod  func(*Load)
		want string
	}{
		{func(l *Load) { l.Streams = nil }, "no streams"},
		{func(l *Load) { l.Concurrency = 0 }, "concurrency"},
		{func(l *Load) { l.Duration = 2 * MaxDuration }, "duration"},
		{func(l *Load) { l.Interval = -time.Second }, "interval"},
		{func(l *Load) { l.Timeout = 0 }, "timeout"},
	} {
		l := &Load{Streams: Streams(fleet, time.Now()), Sender: sender, Concurrency: 1, Duration: time.Second, Timeout: time.Second}
		tc.mod(l)
		if err := l.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error naming %q", err, tc.want)
		}
	}
}
