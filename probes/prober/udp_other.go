//go:build !linux

package prober

import "time"

// sendStamps are kernel send timestamps, which only Linux's sockets give
// here (kstamp_linux.go); elsewhere there are none.
type sendStamps struct{}

func (*sendStamps) sending(int)      {}
func (*sendStamps) failed()          {}
func (*sendStamps) of(int) time.Time { return time.Time{} }
func (d *datagram) timestamps(int)   {}

// read reads one datagram with the monotonic clock at once after it.
func (d *datagram) read() (int, time.Time, time.Time, error) {
	n, err := d.conn.Read(d.buf)
	return n, time.Now(), time.Time{}, err
}
