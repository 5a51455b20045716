package prober

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// timestamps turns on the kernel's receive and send timestamps on the
// round's socket (as for icmp), so that a UDP RTT too is kernel to kernel:
// without them a reply's RTT included the wait for this goroutine.
func (u *udpRound) timestamps(count int) {
	sc, ok := u.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var receive, send bool
	if raw.Control(func(fd uintptr) { receive, send = enableTimestamps(int(fd)) }) != nil || !receive {
		return
	}
	u.raw, u.oob = raw, make([]byte, 128)
	if send {
		u.stamps = newSendStamps(count)
	}
}

// read reads one datagram: its length, the monotonic clock at once after
// the read, and the kernel's receive timestamp (zero without one).
func (u *udpRound) read() (int, time.Time, time.Time, error) {
	if u.raw == nil {
		n, err := u.conn.Read(u.buf)
		return n, time.Now(), time.Time{}, err
	}
	n, oobn, _, mono, err := recvmsg(u.raw, u.stamps, u.buf, u.oob)
	var errno syscall.Errno
	if errors.As(err, &errno) {
		// As conn.Read says it: an ICMP port unreachable is a refused read.
		err = &net.OpError{Op: "read", Net: "udp", Source: u.conn.LocalAddr(), Addr: u.conn.RemoteAddr(), Err: os.NewSyscallError("recvmsg", err)}
	}
	if err != nil {
		return 0, mono, time.Time{}, err
	}
	return n, mono, kernelTime(u.oob[:oobn]), nil
}
