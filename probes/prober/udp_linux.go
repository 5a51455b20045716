package prober

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// timestamps turns on the kernel's receive and send timestamps for count
// sends on the socket (as for icmp), so that a udp or dns RTT too is kernel
// to kernel: without them a reply's RTT included the wait for this
// goroutine.
func (d *datagram) timestamps(count int) {
	sc, ok := d.conn.(syscall.Conn)
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
	d.raw, d.oob = raw, make([]byte, 128)
	if send {
		d.stamps = newSendStamps(count)
	}
}

// read reads one datagram: its length, the monotonic clock at once after
// the read, and the kernel's receive timestamp (zero without one).
func (d *datagram) read() (int, time.Time, time.Time, error) {
	if d.raw == nil {
		n, err := d.conn.Read(d.buf)
		return n, time.Now(), time.Time{}, err
	}
	n, oobn, _, mono, err := recvmsg(d.raw, d.stamps, d.buf, d.oob)
	var errno syscall.Errno
	if errors.As(err, &errno) {
		// As conn.Read says it: an ICMP port unreachable is a refused read.
		err = &net.OpError{Op: "read", Net: "udp", Source: d.conn.LocalAddr(), Addr: d.conn.RemoteAddr(), Err: os.NewSyscallError("recvmsg", err)}
	}
	if err != nil {
		return 0, mono, time.Time{}, err
	}
	return n, mono, kernelTime(d.oob[:oobn]), nil
}
