//go:build darwin || linux || openbsd

package hub

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawWriter makes non-blocking vectored writes on the connection's socket.
type rawWriter struct{ rc syscall.RawConn }

// newRawWriter returns the raw writer of a TCP (or Unix) connection; ok is
// false for anything else, e.g. a TLS connection, which must encrypt per
// client and is written the blocking way.
func newRawWriter(nc net.Conn) (rawWriter, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return rawWriter{}, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return rawWriter{}, false
	}
	return rawWriter{rc}, true
}

// maxIovecs is IOV_MAX on Linux and the BSDs.
const maxIovecs = 1024

// tryWrite writes as much of bufs as the socket takes now, without
// waiting: Go's sockets are non-blocking, and returning true from the
// callback stops RawConn from parking the goroutine until the socket is
// writable. It returns the bytes written; a full socket is not an error.
func (w rawWriter) tryWrite(bufs [][]byte) (int, error) {
	total := 0
	var werr error
	err := w.rc.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			n, err := unix.Writev(int(fd), bufs[:min(len(bufs), maxIovecs)])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				return true
			}
			if err != nil {
				werr = err
				return true
			}
			total += n
			bufs = consumed(bufs, n)
			if n == 0 {
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return total, err
}
