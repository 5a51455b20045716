package prober

import (
	"encoding/binary"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvmsg reads one datagram from raw with its control messages, reading
// the send timestamps queued on its error queue first, and returns the
// monotonic clock at once after the read; a socket error (a refused UDP
// read, say) is returned as the syscall.Errno.
func recvmsg(raw syscall.RawConn, stamps *sendStamps, buf, oob []byte) (n, oobn int, from unix.Sockaddr, mono time.Time, err error) {
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		stamps.read(int(fd))
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	mono = time.Now()
	if err == nil {
		err = rerr
	}
	return n, oobn, from, mono, err
}

// enableTimestamps asks the kernel for receive timestamps (SO_TIMESTAMPNS)
// and software transmit timestamps (SO_TIMESTAMPING) on a datagram socket,
// and reports which it gives. Without them RTTs fall back to the monotonic
// clock. Transmit timestamps, numbered per socket by the kernel (OPT_ID)
// and without the packet (OPT_TSONLY), come back on the socket's error
// queue: the send half of a kernel-to-kernel RTT, which leaves the probe's
// own scheduling and send path out of it (tens of microseconds on a busy
// box, measured in internal/harness/pingpeer).
func enableTimestamps(fd int) (receive, send bool) {
	receive = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
	send = receive && unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
		unix.SOF_TIMESTAMPING_TX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE|unix.SOF_TIMESTAMPING_OPT_TSONLY|unix.SOF_TIMESTAMPING_OPT_ID) == nil
	return receive, send
}

// sendStamps are one round socket's kernel transmit timestamps, by probe.
// send and recv run in two goroutines, so mu guards it all: order[k] is
// the probe of the socket's k-th send (the timestamp's OPT_ID key), at the
// timestamps read, and broken is set when a send failed, after which keys
// may not match probes and the round uses the clock read before each
// send. A nil *sendStamps is a socket without them.
type sendStamps struct {
	mu     sync.Mutex
	order  []int
	at     []time.Time
	broken bool
	oob    []byte
}

func newSendStamps(count int) *sendStamps {
	return &sendStamps{at: make([]time.Time, count), oob: make([]byte, 256)}
}

// sending is told, before the write, that probe i is the next send.
func (s *sendStamps) sending(i int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.order = append(s.order, i)
	s.mu.Unlock()
}

// failed is told that the last send failed.
func (s *sendStamps) failed() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.broken = true
	s.mu.Unlock()
}

// of is probe i's kernel send time, zero when there is none.
func (s *sendStamps) of(i int) time.Time {
	if s == nil {
		return time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return time.Time{}
	}
	return s.at[i]
}

// read reads the timestamps queued on fd's error queue (SCM_TIMESTAMPING,
// keyed by a sock_extended_err whose data is the send's number on this
// socket). The reader calls it before every read: a timestamp wakes the
// reader (EPOLLERR, with EPOLLOUT while the socket is writable, so Go's
// poller does not take it for a polling error) and is queued before the
// reply to its request can arrive.
func (s *sendStamps) read(fd int) {
	if s == nil {
		return
	}
	for range len(s.at) + 1 { // bounded: one timestamp per send
		_, oobn, _, _, err := unix.Recvmsg(fd, nil, s.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		at, key, ok := sendStamp(s.oob[:oobn])
		if !ok {
			continue
		}
		s.mu.Lock()
		if key < len(s.order) {
			s.at[s.order[key]] = at
		}
		s.mu.Unlock()
	}
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

// sendStamp reads one SCM_TIMESTAMPING message from the error queue: the
// software timestamp and its OPT_ID key.
func sendStamp(oob []byte) (time.Time, int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, 0, false
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
	return at, key, key >= 0 && !at.IsZero()
}
