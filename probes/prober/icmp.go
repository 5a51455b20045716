//go:build linux

package prober

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/bantay-noc/bantay/probes/config"
)

// ICMP socket kinds, as Mode reports them.
const (
	// ICMPPingSocket is an unprivileged ICMP datagram socket, allowed for
	// the groups in net.ipv4.ping_group_range (it covers IPv6 too). The
	// kernel picks the echo identifier and delivers only this socket's
	// replies.
	ICMPPingSocket = "ping socket"
	// ICMPRawSocket needs CAP_NET_RAW and sees every ICMP packet the host
	// receives, so replies are matched by identifier, sequence, source and
	// a per-round cookie in the payload.
	ICMPRawSocket = "raw socket"
)

// ICMP measures echo request/reply round trips, IPv4 or IPv6 by the
// target's address. Packets are built and parsed by golang.org/x/net/icmp;
// the socket is opened here, because x/net's does not expose its file
// descriptor and kernel receive timestamps (SO_TIMESTAMPNS) need it.
type ICMP struct {
	host string
	opts Options
	// mode and timestamps are what a socket opened at start offered;
	// startErr is why none could be opened then.
	mode     string
	startErr error
	// timestamps: the socket gives kernel receive timestamps;
	// sendTimestamps: and kernel send timestamps.
	timestamps, sendTimestamps bool
	seq                        atomic.Uint32
}

// NewICMP returns a prober for host (a name or an IP address). It opens a
// socket once to see which kind this process may use for the target's
// family (a ping socket where allowed, else a raw one), for Mode and
// StartError to report at start. A host that may use neither still gets a
// prober: each of its probes fails with the reason (counted as `other`),
// while the probe's other targets go on, and it starts working as soon as
// ping_group_range or the capability allows.
func NewICMP(host string, opts Options) (*ICMP, error) {
	if host == "" {
		return nil, errors.New("icmp prober: no host")
	}
	p := &ICMP{host: host, opts: opts}
	v6 := opts.BindAddress.Is6() && !opts.BindAddress.Is4In6()
	if a, err := netip.ParseAddr(host); err == nil {
		v6 = a.Is6() && !a.Is4In6()
	}
	if s, err := openICMP(v6, opts.BindAddress); err != nil {
		p.startErr = fmt.Errorf("icmp to %s: %w", host, err)
	} else {
		p.mode, p.timestamps, p.sendTimestamps = s.mode, s.timestamps, s.sendTimestamps
		s.close()
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	p.seq.Store(binary.BigEndian.Uint32(b[:]))
	return p, nil
}

// Method implements Prober.
func (*ICMP) Method() string { return config.MethodICMP }

// Mode says which kind of socket the prober uses (ICMPPingSocket or
// ICMPRawSocket); empty when StartError is not nil.
func (p *ICMP) Mode() string { return p.mode }

// StartError is why no ICMP socket could be opened when the prober was
// made (an *ICMPPermissionError, typically), or nil.
func (p *ICMP) StartError() error { return p.startErr }

// KernelTimestamps reports whether RTTs use the kernel's receive
// timestamps (SO_TIMESTAMPNS) rather than the monotonic clock alone.
func (p *ICMP) KernelTimestamps() bool { return p.timestamps }

// KernelSendTimestamps reports whether RTTs also start from the kernel's
// software transmit timestamps (SO_TIMESTAMPING), taken as the driver is
// handed the request, rather than from the clock read before the send.
func (p *ICMP) KernelSendTimestamps() bool { return p.sendTimestamps }

// Probe implements Prober.
func (p *ICMP) Probe(ctx context.Context) (Result, error) { return probeSequenced(ctx, p) }

// ICMPPermissionError says that neither kind of ICMP socket may be opened.
type ICMPPermissionError struct {
	PingGroupRange string
	PingErr        error
	RawErr         error
}

func (e *ICMPPermissionError) Error() string {
	return fmt.Sprintf("not permitted: ping sockets are not allowed for this process's groups "+
		"(net.ipv4.ping_group_range = %q: %v; widen it, e.g. sysctl -w net.ipv4.ping_group_range=\"0 2147483647\") "+
		"and raw sockets need CAP_NET_RAW (%v; run as root or setcap cap_net_raw+ep on the binary)",
		e.PingGroupRange, e.PingErr, e.RawErr)
}

// Unwrap lets errors.Is(err, syscall.EPERM) see the raw socket's refusal.
func (e *ICMPPermissionError) Unwrap() []error { return []error{e.PingErr, e.RawErr} }

// UnreachableError is an ICMP destination unreachable (or, for IPv6,
// its equivalent) answering a probe. Only raw sockets receive them; a ping
// socket sees such a probe as lost.
type UnreachableError struct {
	From netip.Addr
	Code int
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("icmp: destination unreachable (code %d) from %s", e.Code, e.From)
}

// icmpSocket is one open ICMP socket.
type icmpSocket struct {
	pc                         net.PacketConn
	raw                        syscall.RawConn
	mode                       string
	v6                         bool
	timestamps, sendTimestamps bool
}

func (s *icmpSocket) close() error { return s.pc.Close() }

func openICMP(v6 bool, bind netip.Addr) (*icmpSocket, error) {
	domain, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if v6 {
		domain, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	var errs [2]error
	for k, typ := range []int{unix.SOCK_DGRAM, unix.SOCK_RAW} {
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			errs[k] = os.NewSyscallError("socket", err)
			continue
		}
		s, err := wrapICMP(fd, v6, bind)
		if err != nil {
			return nil, err
		}
		s.mode = ICMPPingSocket
		if typ == unix.SOCK_RAW {
			s.mode = ICMPRawSocket
		}
		return s, nil
	}
	// Two refusals for permission are the common case and get their own
	// message; anything else (no IPv6 on the host) is passed on as is.
	if errors.Is(errs[0], unix.EACCES) || errors.Is(errs[0], unix.EPERM) {
		if errors.Is(errs[1], unix.EPERM) || errors.Is(errs[1], unix.EACCES) {
			rng, _ := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
			return nil, &ICMPPermissionError{PingGroupRange: strings.Join(strings.Fields(string(rng)), " "), PingErr: errs[0], RawErr: errs[1]}
		}
	}
	return nil, errors.Join(errs[:]...)
}

// wrapICMP binds fd, asks for kernel timestamps and hands it to Go's
// poller (net.FilePacketConn), as x/net/icmp.ListenPacket does.
func wrapICMP(fd int, v6 bool, bind netip.Addr) (*icmpSocket, error) {
	fail := func(err error) (*icmpSocket, error) {
		unix.Close(fd)
		return nil, err
	}
	if bind.IsValid() {
		var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: bind.Unmap().As4()}
		if v6 {
			sa = &unix.SockaddrInet6{Addr: bind.As16()}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fail(fmt.Errorf("bind icmp socket to %s: %w", bind, err))
		}
	}
	ts, sendTS := enableTimestamps(fd)
	f := os.NewFile(uintptr(fd), "icmp")
	pc, err := net.FilePacketConn(f)
	f.Close() // FilePacketConn holds its own duplicate
	if err != nil {
		return nil, err
	}
	sc, ok := pc.(syscall.Conn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("icmp: %T has no file descriptor", pc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &icmpSocket{pc: pc, raw: raw, v6: v6, timestamps: ts, sendTimestamps: sendTS}, nil
}

func (p *ICMP) openRound(ctx context.Context, count int) (roundConn, error) {
	ip, err := p.resolve(ctx)
	if err != nil {
		return nil, err
	}
	s, err := openICMP(ip.Is6(), p.opts.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("icmp to %s: %w", p.host, err)
	}
	r := &icmpRound{icmpSocket: s, dst: ip, count: count, buf: make([]byte, 1500), oob: make([]byte, 128)}
	if s.sendTimestamps {
		r.stamps = newSendStamps(count)
	}
	r.first = uint16(p.seq.Add(uint32(count)) - uint32(count) + 1)
	var b [10]byte
	_, _ = rand.Read(b[:])
	r.id = binary.BigEndian.Uint16(b[:2])
	copy(r.cookie[:], b[2:])
	r.to = &net.IPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}
	if s.mode == ICMPPingSocket {
		r.to = &net.UDPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}
	}
	return r, nil
}

// resolve returns the target's address, of the bind address's family when
// one is set.
func (p *ICMP) resolve(ctx context.Context) (netip.Addr, error) {
	if a, err := netip.ParseAddr(p.host); err == nil {
		return a.Unmap(), nil
	}
	hp, err := resolve(ctx, p.opts, net.JoinHostPort(p.host, "0"))
	if err != nil {
		return netip.Addr{}, err
	}
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

type icmpRound struct {
	*icmpSocket
	dst    netip.Addr
	to     net.Addr
	id     uint16
	first  uint16
	count  int
	cookie [8]byte
	buf    []byte
	oob    []byte
	stamps *sendStamps // nil without kernel send timestamps
}

func (r *icmpRound) proto() int {
	if r.v6 {
		return unix.IPPROTO_ICMPV6
	}
	return unix.IPPROTO_ICMP
}

func (r *icmpRound) send(i int) error {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if r.v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	// The checksum: x/net computes IPv4's; for IPv6 the kernel fills it
	// in (it needs the pseudo-header), on ping and raw sockets alike.
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{
		ID: int(r.id), Seq: int(r.first + uint16(i)), Data: r.cookie[:],
	}}).Marshal(nil)
	if err != nil {
		return err
	}
	r.stamps.sending(i)
	if _, err = r.pc.WriteTo(b, r.to); err != nil {
		r.stamps.failed()
	}
	return err
}

func (r *icmpRound) recv() (int, time.Time, time.Time, time.Time, error) {
	for {
		n, oobn, from, mono, err := recvmsg(r.raw, r.stamps, r.buf, r.oob)
		if err != nil {
			return -1, mono, time.Time{}, time.Time{}, err
		}
		i, ok, uerr := r.match(r.buf[:n], from)
		if !ok {
			continue
		}
		if uerr != nil {
			return i, mono, time.Time{}, time.Time{}, uerr
		}
		return i, mono, r.stamps.of(i), kernelTime(r.oob[:oobn]), nil
	}
}

// match decides whether b (from a recvmsg) answers a probe of this round:
// an echo reply, or a destination unreachable quoting one of its requests.
func (r *icmpRound) match(b []byte, from unix.Sockaddr) (i int, ok bool, unreachable error) {
	src := sockaddrAddr(from)
	if !r.v6 && r.mode == ICMPRawSocket {
		// Raw IPv4 sockets deliver the IP header too.
		if len(b) < 20 || b[0]>>4 != 4 {
			return 0, false, nil
		}
		b = b[int(b[0]&0x0f)*4:]
	}
	m, err := icmp.ParseMessage(r.proto(), b)
	if err != nil {
		return 0, false, nil
	}
	switch m.Type {
	case ipv4.ICMPTypeEchoReply, ipv6.ICMPTypeEchoReply:
		echo, isEcho := m.Body.(*icmp.Echo)
		if !isEcho || src != r.dst || len(echo.Data) < len(r.cookie) || [8]byte(echo.Data[:8]) != r.cookie {
			return 0, false, nil
		}
		if r.mode == ICMPRawSocket && echo.ID != int(r.id) {
			return 0, false, nil
		}
		i, ok := r.index(echo.Seq)
		return i, ok, nil
	case ipv4.ICMPTypeDestinationUnreachable, ipv6.ICMPTypeDestinationUnreachable:
		du, isDU := m.Body.(*icmp.DstUnreach)
		if !isDU {
			return 0, false, nil
		}
		id, seq, quoted := r.quoted(du.Data)
		if !quoted || id != r.id {
			return 0, false, nil
		}
		i, mine := r.index(seq)
		if !mine {
			return 0, false, nil
		}
		return i, true, &UnreachableError{From: src, Code: m.Code}
	}
	return 0, false, nil
}

func (r *icmpRound) index(seq int) (int, bool) {
	i := int(uint16(seq) - r.first)
	return i, i < r.count
}

// quoted reads the echo identifier and sequence from the original
// datagram an ICMP error quotes (its IP header, then our ICMP header).
func (r *icmpRound) quoted(d []byte) (id uint16, seq int, ok bool) {
	hl := 40
	if !r.v6 {
		if len(d) < 20 {
			return 0, 0, false
		}
		hl = int(d[0]&0x0f) * 4
	}
	if len(d) < hl+8 {
		return 0, 0, false
	}
	e := d[hl:]
	return binary.BigEndian.Uint16(e[4:6]), int(binary.BigEndian.Uint16(e[6:8])), true
}

func sockaddrAddr(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap()
	}
	return netip.Addr{}
}
