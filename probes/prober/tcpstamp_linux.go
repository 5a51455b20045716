//go:build linux

package prober

import (
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// handshakeRTT is the kernel's measure of conn's TCP handshake: TCP_INFO's
// RTT, which right after the connect holds its one sample, from the SYN's
// transmission to the SYN-ACK's processing, in microseconds. It leaves out
// what the clock around the dial also holds: making the socket, Go's
// poller, and the wait for this goroutine after the SYN-ACK (0.1–0.3 ms on
// a busy probe box, measured in internal/harness/pingpeer). False when the
// SYN was retransmitted (the sample, if any, is then not the wait the
// connect had) or conn gives no TCP_INFO.
func handshakeRTT(conn net.Conn) (time.Duration, bool) {
	raw, ok := rawConn(conn)
	if !ok {
		return 0, false
	}
	var info *unix.TCPInfo
	var err error
	if raw.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }) != nil || err != nil ||
		info.Total_retrans != 0 || info.Rtt == 0 {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}

func rawConn(conn net.Conn) (syscall.RawConn, bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}

// stampedTCP is a TCP connection that keeps the kernel's time of what it
// sends and receives, for http's phases: the software transmit timestamp
// of each write (SO_TIMESTAMPING with OPT_ID, which on TCP keys a
// timestamp by the offset of the write's last byte; it comes back on the
// socket's error queue when that byte's segment reaches the driver) and
// the receive timestamps of the first and the last segment each read
// returned (SO_TIMESTAMPNS on recvmsg).
type stampedTCP struct {
	net.Conn
	raw       syscall.RawConn
	handshake time.Duration
	oob, eoob []byte

	mu      sync.Mutex
	written uint32   // bytes written since the timestamps were enabled
	keys    []uint32 // each write's last byte's offset
	// sent are the transmit timestamps read from the error queue, by
	// key, the first of each (see readSent).
	sent map[uint32]time.Time
	// readFirst and lastRead are the arrival of the first and the last
	// segment the last read returned.
	readFirst, lastRead time.Time
}

// stampTCP wraps a just-connected conn when the kernel gives its handshake
// RTT and both timestamps; otherwise it returns conn as it was.
func stampTCP(conn net.Conn) net.Conn {
	handshake, ok := handshakeRTT(conn)
	if !ok {
		return conn
	}
	raw, _ := rawConn(conn)
	var receive, send bool
	if raw.Control(func(fd uintptr) { receive, send = enableTimestamps(int(fd)) }) != nil || !receive || !send {
		return conn
	}
	return &stampedTCP{Conn: conn, raw: raw, handshake: handshake, oob: make([]byte, 128), eoob: make([]byte, 256), sent: map[uint32]time.Time{}}
}

// Write counts the write before it is made: on a fast path the answer
// can be read, and the trace marked, before the write returns.
func (c *stampedTCP) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return c.Conn.Write(b)
	}
	c.mu.Lock()
	c.written += uint32(len(b))
	c.keys = append(c.keys, c.written-1)
	c.mu.Unlock()
	n, err := c.Conn.Write(b)
	if n < len(b) {
		// Failed part way (the probe fails with it): what was sent ends
		// before the key said.
		c.mu.Lock()
		c.written -= uint32(len(b) - n)
		c.keys[len(c.keys)-1] = c.written - 1
		c.mu.Unlock()
	}
	return n, err
}

// Read reads with recvmsg to have the receive timestamps, reading the
// transmit timestamps queued on the error queue first (they wake the
// reader, see sendStamps.read). TCP gives one timestamp per recvmsg, the
// last segment's it copied, so the first byte is read alone: a reader
// woken late (a busy box) may find a response's first and later segments
// queued together, and the first one's arrival is when the server's
// answer began.
func (c *stampedTCP) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		c.readSent(int(fd))
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b[:1], c.oob, 0)
		return rerr != unix.EAGAIN
	})
	if err == nil && rerr != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: rerr}
	}
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	first := kernelTime(c.oob[:oobn])
	last := first
	// The rest of what is queued, without waiting: nothing more (EAGAIN),
	// the end of the stream or an error are the next Read's to report.
	var more, moreOOB int
	var merr error
	c.raw.Control(func(fd uintptr) { more, moreOOB, _, _, merr = unix.Recvmsg(int(fd), b[1:], c.oob, unix.MSG_DONTWAIT) })
	if merr == nil && more > 0 {
		n += more
		if at := kernelTime(c.oob[:moreOOB]); !at.IsZero() {
			last = at
		}
	}
	if !first.IsZero() {
		c.mu.Lock()
		c.readFirst, c.lastRead = first, last
		c.mu.Unlock()
	}
	return n, nil
}

// readSent reads the transmit timestamps on fd's error queue.
func (c *stampedTCP) readSent(fd int) {
	for range 64 { // bounded: a request is a handful of writes
		_, oobn, _, _, err := unix.Recvmsg(fd, nil, c.eoob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		at, key, ok := sendStamp(c.eoob[:oobn])
		if !ok {
			continue
		}
		// The first is the write's: a retransmission of its segment is
		// stamped again under the same key, and the phase began when
		// the bytes first left.
		c.mu.Lock()
		if _, ok := c.sent[uint32(key)]; !ok {
			c.sent[uint32(key)] = at
		}
		c.mu.Unlock()
	}
}

// mark is what the connection has seen so far: its writes and the kernel
// times of the last read's segments.
func (c *stampedTCP) mark() connMark {
	c.mu.Lock()
	defer c.mu.Unlock()
	return connMark{writes: len(c.keys), readFirst: c.readFirst, lastRead: c.lastRead}
}

// sentAt is the transmit timestamp of write i (from 0), reading the error
// queue first; zero when there is none.
func (c *stampedTCP) sentAt(i int) time.Time {
	c.raw.Control(func(fd uintptr) { c.readSent(int(fd)) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.keys) {
		return time.Time{}
	}
	return c.sent[c.keys[i]]
}

func (c *stampedTCP) handshakeRTT() time.Duration { return c.handshake }
