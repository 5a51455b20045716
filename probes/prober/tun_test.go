//go:build linux

package prober

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// tunResponder answers IPv4 ICMP echo requests routed into a TUN device:
// the n-th request after delay, none if drop[n], two replies if dup[n].
// It is what `tc netem` would be on a real link, in user space, inside the
// test's own network namespace (netem is not available here).
type tunResponder struct {
	delay time.Duration
	drop  map[int]bool
	dup   map[int]bool
}

// start creates the TUN device name with local address local/24 (the
// rest of the /24 is reachable through it) and serves until the test ends.
func (r tunResponder) start(t *testing.T, name, local string) {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/net/tun: %v", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		t.Fatalf("TUNSETIFF: %v", err)
	}
	// Non-blocking, so that the os.File is in Go's poller and Close ends a
	// pending Read.
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	dev := os.NewFile(uintptr(fd), name)
	for _, args := range [][]string{{"addr", "add", local + "/24", "dev", name}, {"link", "set", name, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		dev.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 65535)
		for n := 0; ; {
			k, err := dev.Read(buf)
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			reply, ok := echoReply(buf[:k])
			if !ok {
				continue // router solicitations and the like
			}
			if i := n; !r.drop[i] {
				copies := 1
				if r.dup[i] {
					copies = 2
				}
				wg.Add(1)
				time.AfterFunc(r.delay, func() {
					defer wg.Done()
					for range copies {
						dev.Write(reply)
					}
				})
			}
			n++
		}
	})
}

// echoReply turns an IPv4 echo request into its reply: the addresses
// swapped (which leaves the IP checksum as it was) and the ICMP message
// rebuilt by x/net with type echo reply.
func echoReply(pkt []byte) ([]byte, bool) {
	h, err := ipv4.ParseHeader(pkt)
	if err != nil || h.Protocol != 1 || len(pkt) < h.Len {
		return nil, false
	}
	m, err := icmp.ParseMessage(1, pkt[h.Len:])
	if err != nil || m.Type != ipv4.ICMPTypeEcho {
		return nil, false
	}
	body, err := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: m.Body}).Marshal(nil)
	if err != nil {
		return nil, false
	}
	out := append([]byte(nil), pkt[:h.Len]...)
	copy(out[12:16], pkt[16:20])
	copy(out[16:20], pkt[12:16])
	return append(out, body...), true
}
