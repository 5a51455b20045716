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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

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
	// Without kernel timestamps RTTs fall back to the monotonic clock.
	ts := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
	// Software transmit timestamps, numbered per socket by the kernel
	// (OPT_ID) and without the packet (OPT_TSONLY), come back on the
	// socket's error queue: the send half of a kernel-to-kernel RTT, which
	// leaves the probe's own scheduling and send path out of it (tens of
	// microseconds on a busy box, measured in internal/harness/pingpeer).
	sendTS := ts && unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
		unix.SOF_TIMESTAMPING_TX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE|unix.SOF_TIMESTAMPING_OPT_TSONLY|unix.SOF_TIMESTAMPING_OPT_ID) == nil
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
	r := &icmpRound{icmpSocket: s, dst: ip, count: count, buf: make([]byte, 1500), oob: make([]byte, 128),
		errOOB: make([]byte, 256), sentAt: make([]time.Time, count)}
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
	errOOB []byte
	// mu guards what send and recv, in two goroutines, share about the
	// kernel's send timestamps: order[k] is the probe of the socket's k-th
	// send (the timestamp's OPT_ID key), sentAt the timestamps read, and
	// noSendTS is set when a send failed, after which keys may not match
	// probes and the round uses the clock read before each send.
	mu       sync.Mutex
	order    []int
	sentAt   []time.Time
	noSendTS bool
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
	r.mu.Lock()
	r.order = append(r.order, i)
	r.mu.Unlock()
	if _, err = r.pc.WriteTo(b, r.to); err != nil {
		r.mu.Lock()
		r.noSendTS = true
		r.mu.Unlock()
	}
	return err
}

func (r *icmpRound) recv() (int, time.Time, time.Time, time.Time, error) {
	for {
		var n, oobn int
		var from unix.Sockaddr
		var rerr error
		err := r.raw.Read(func(fd uintptr) bool {
			// A send timestamp wakes the reader (EPOLLERR, with EPOLLOUT
			// while the socket is writable, so Go's poller does not take
			// it for a polling error) and is queued before the reply to
			// its request can arrive, so it is read first.
			if r.sendTimestamps {
				r.readSendTimestamps(int(fd))
			}
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), r.buf, r.oob, 0)
			return rerr != unix.EAGAIN
		})
		mono := time.Now()
		if err == nil {
			err = rerr
		}
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
		r.mu.Lock()
		sent := r.sentAt[i]
		if r.noSendTS {
			sent = time.Time{}
		}
		r.mu.Unlock()
		return i, mono, sent, kernelTime(r.oob[:oobn]), nil
	}
}

// readSendTimestamps reads the kernel's send timestamps queued on the
// socket's error queue (SCM_TIMESTAMPING, keyed by a sock_extended_err
// whose data is the send's number on this socket) into sentAt.
func (r *icmpRound) readSendTimestamps(fd int) {
	for range r.count + 1 { // bounded: one timestamp per send
		_, oobn, _, _, err := unix.Recvmsg(fd, nil, r.errOOB, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(r.errOOB[:oobn])
		if err != nil {
			continue
		}
		var at time.Time
		key := -1
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPING && len(m.Data) >= int(unsafe.Sizeof(unix.ScmTimestamping{})):
				ts := (*unix.ScmTimestamping)(unsafe.Pointer(&m.Data[0]))
				at = time.Unix(ts.Ts[0].Unix())
			case (m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR || m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) &&
				len(m.Data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})):
				ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
				if ee.Errno == uint32(unix.ENOMSG) && ee.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING {
					key = int(ee.Data)
				}
			}
		}
		r.mu.Lock()
		if key >= 0 && key < len(r.order) && !at.IsZero() {
			r.sentAt[r.order[key]] = at
		}
		r.mu.Unlock()
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

// kernelTime finds the SCM_TIMESTAMPNS control message; zero if absent.
func kernelTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec)
		}
	}
	return time.Time{}
}
