//go:build !linux

package prober

import (
	"net"
	"time"
)

// handshakeRTT: only Linux's TCP_INFO gives the kernel's handshake RTT
// here (tcpstamp_linux.go); elsewhere a connect is timed by the clock.
func handshakeRTT(net.Conn) (time.Duration, bool) { return 0, false }

// stampTCP returns conn as it was: without kernel timestamps, http's
// phases are timed by the clock.
func stampTCP(conn net.Conn) net.Conn { return conn }
