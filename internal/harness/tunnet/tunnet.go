//go:build linux

// Package tunnet is a network path with a known delay, for measuring
// probers against ground truth: a TUN device inside a network namespace the
// test creates (so the host's routes and sysctls are untouched), a
// user-space ICMP echo responder behind it that delays and drops what it is
// told to (netem is not available on the test machines), and a packet
// capture on the device that timestamps every request and reply in the
// kernel. The capture, not the responder's intent, is the ground truth:
// the responder's user-space timer fires late (measured: 0.1 ms at 1 ms,
// about 1 ms at 50 ms at p50, tens of milliseconds at p99 on a loaded
// machine), so a responder told to hold a reply 50 ms holds it 50–51 ms or
// more, and only the wire can say how long. The responder also records when
// it read each request and began to write its reply, to say where a hold's
// excess came from.
package tunnet

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/probes/echo"
)

// InNetns reports whether this process is the copy of the test binary
// that runs test inside a network namespace of its own. When it is not,
// InNetns runs that copy (unshare --net, env set to 1), fails t unless the
// copy's test passed, and returns false: the caller returns too. Creating
// a namespace needs root; elsewhere the test is skipped (failed under CI).
func InNetns(t *testing.T, test, env string) bool {
	t.Helper()
	if os.Getenv(env) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set lo up: %v %s", err, out)
		}
		return true
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "a network namespace needs root")
	}
	unshare := testenv.Binary(t, "unshare", "")
	cmd := exec.Command(unshare, "--net", "--", os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s in its own network namespace:\n%s", test, out)
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("%s in its network namespace: %v", test, err)
	}
	return false
}

// OpenTUN creates a TUN device with the address cidr, up, closed when the
// test ends.
func OpenTUN(t testing.TB, name, cidr string) *os.File {
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
	for _, args := range [][]string{{"addr", "add", cidr, "dev", name}, {"link", "set", name, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	return dev
}

// Serve hands every packet read from dev to handle (a copy it may keep)
// and writes what it returns back to dev, copies times, after wait (at
// once and in order when wait is 0), until the test ends. writing, when
// not nil, is told each reply just before it is written.
func Serve(t testing.TB, dev *os.File, handle func(pkt []byte) (out []byte, wait time.Duration, copies int), writing func(out []byte)) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		dev.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			k, err := dev.Read(buf)
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			out, wait, copies := handle(append([]byte(nil), buf[:k]...))
			if copies == 0 {
				continue
			}
			if wait <= 0 {
				if writing != nil {
					writing(out)
				}
				for range copies {
					dev.Write(out)
				}
				continue
			}
			wg.Add(1)
			time.AfterFunc(wait, func() {
				defer wg.Done()
				if writing != nil {
					writing(out)
				}
				for range copies {
					dev.Write(out)
				}
			})
		}
	})
}

// EchoReply turns an IPv4 echo request into its reply: the addresses
// swapped (which leaves the IP checksum as it was) and the ICMP message
// rebuilt by x/net with type echo reply.
func EchoReply(pkt []byte) ([]byte, bool) {
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

// UDPEchoReply turns an IPv4 datagram carrying a Bantay UDP echo request
// (probes/echo) into the reflector's reply: addresses and ports swapped,
// the packet made a reply in place by echo.MakeReply, checksums redone.
func UDPEchoReply(pkt []byte) ([]byte, bool) {
	h, err := ipv4.ParseHeader(pkt)
	if err != nil || h.Protocol != 17 || len(pkt) < h.Len+8 {
		return nil, false
	}
	out := append([]byte(nil), pkt...)
	if echo.MakeReply(out[h.Len+8:]) != nil {
		return nil, false
	}
	copy(out[12:16], pkt[16:20])
	copy(out[16:20], pkt[12:16])
	copy(out[h.Len:h.Len+2], pkt[h.Len+2:h.Len+4])
	copy(out[h.Len+2:h.Len+4], pkt[h.Len:h.Len+2])
	return out, FixChecksums(out)
}

// Path is what the responder does to the echo requests of one
// measurement, by their index from 0 in the order they reach it.
type Path struct {
	// Delay is how long request i's reply is held.
	Delay func(i int) time.Duration
	// Drop reports whether request i goes unanswered; nil drops none.
	Drop func(i int) bool
}

// Responder answers the IPv4 echo requests routed into its TUN device —
// ICMP echo, and Bantay's UDP echo on any port, as a reflector would — as
// its current Path says, and records when it read each request and began
// to write its reply.
type Responder struct {
	mu    sync.Mutex
	path  Path
	n     int // requests seen under path
	holds map[echoKey]*Hold
}

// Hold is the responder's own account of one answered request: when its
// read returned, the delay it was told to add, and when it began writing
// the reply (wall clock, as the capture's timestamps).
type Hold struct {
	Read     time.Time
	Nominal  time.Duration
	Writing  time.Time
	Answered bool
}

type echoKey struct{ id, seq uint16 }

// NewResponder creates the TUN device name with local/24 (the rest of the
// /24 is reachable through it, so local+1 is a remote host that answers
// pings) and serves until the test ends. It answers nothing until Set.
func NewResponder(t testing.TB, name, local string) (*Responder, *os.File) {
	t.Helper()
	r := &Responder{path: Path{Delay: func(int) time.Duration { return 0 }, Drop: func(int) bool { return true }}, holds: map[echoKey]*Hold{}}
	dev := OpenTUN(t, name, local+"/24")
	Serve(t, dev, func(pkt []byte) ([]byte, time.Duration, int) {
		read := time.Now()
		reply, ok := EchoReply(pkt)
		if !ok {
			reply, ok = UDPEchoReply(pkt)
		}
		if !ok {
			return nil, 0, 0 // router solicitations and the like
		}
		e, _ := parseEcho(pkt)
		r.mu.Lock()
		defer r.mu.Unlock()
		i, p := r.n, r.path
		r.n++
		if p.Drop != nil && p.Drop(i) {
			return nil, 0, 0
		}
		r.holds[echoKey{e.ID, e.Seq}] = &Hold{Read: read, Nominal: p.Delay(i)}
		return reply, p.Delay(i), 1
	}, func(out []byte) {
		now := time.Now()
		e, _ := parseEcho(out)
		r.mu.Lock()
		defer r.mu.Unlock()
		if h := r.holds[echoKey{e.ID, e.Seq}]; h != nil {
			h.Writing, h.Answered = now, true
		}
	})
	return r, dev
}

// Set makes p the path for the requests from now on, counted from 0, and
// forgets the holds of the last one.
func (r *Responder) Set(p Path) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.path, r.n, r.holds = p, 0, map[echoKey]*Hold{}
}

// Seen is the number of echo requests the responder read under the
// current path (answered or dropped).
func (r *Responder) Seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Hold is the responder's account of the request with this identifier and
// sequence number under the current path.
func (r *Responder) Hold(id, seq uint16) (Hold, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.holds[echoKey{id, seq}]
	if h == nil || !h.Answered {
		return Hold{}, false
	}
	return *h, true
}

// InterfaceIndex is the index of the device dev, for Listen.
func InterfaceIndex(t testing.TB, dev *os.File) int {
	t.Helper()
	ifc, err := net.InterfaceByName(dev.Name())
	if err != nil {
		t.Fatal(err)
	}
	return ifc.Index
}
