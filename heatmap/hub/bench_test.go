package hub

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

// benchKeys returns n distinct cells.
func benchKeys(n int) []pathstate.CellKey {
	carriers := []string{"Globe", "Smart", "DITO", "PLDT", "Converge"}
	keys := make([]pathstate.CellKey, n)
	for i := range keys {
		keys[i] = pathstate.CellKey{SrcCity: "Src" + strconv.Itoa(i/100), DstCity: "Dst" + strconv.Itoa(i%100), Carrier: carriers[i%5], NetworkType: "4g"}
	}
	return keys
}

// BenchmarkBroadcast measures fan-out: per tick 100 of 1,000 cells change
// and the delta reaches every connected client over loopback websocket.
// One op = one tick delivered to all clients (the clients' reading runs in
// this process too, so this is an upper bound of the server's share).
func BenchmarkBroadcast(b *testing.B) {
	for _, clients := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			h := newTestHeatmap(b, func(c *Config) { c.MaxConnections = clients + 10 })
			f := newFeeder(h)
			keys := benchKeys(1000)
			now := t0
			for _, k := range keys {
				f.feed(k, now, 20, 5)
			}
			h.tick(now)
			base := serve(b, h)
			var target atomic.Uint64
			var wg sync.WaitGroup
			conns := make([]*websocket.Conn, clients)
			for i := range conns {
				conns[i] = dial(b, base, "", nil)
				next(b, conns[i])
			}
			var readers sync.WaitGroup
			readErrs := make(chan error, clients)
			for _, c := range conns {
				readers.Add(1)
				go func() {
					defer readers.Done()
					for {
						_ = c.SetReadDeadline(time.Now().Add(time.Minute))
						_, data, err := c.ReadMessage()
						if err != nil {
							readErrs <- err
							return
						}
						if seqOf(data) == target.Load() {
							wg.Done()
						}
					}
				}()
			}
			var sent atomic.Int64
			b.ResetTimer()
			for b.Loop() {
				now = now.Add(time.Second)
				for i := range 100 {
					f.feed(keys[(int(now.Unix())*100+i)%len(keys)], now, 25, 1)
				}
				h.mu.Lock()
				target.Store(h.seq + 1)
				h.mu.Unlock()
				wg.Add(clients)
				h.tick(now.Add(500 * time.Millisecond))
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				select {
				case <-done:
				case err := <-readErrs:
					b.Fatalf("a client stopped reading at seq %d: %v (disconnects: slow %g, write errors %g, keepalive %g)", target.Load(), err,
						testutil.ToFloat64(h.m.disconnects.WithLabelValues("slow_consumer")), testutil.ToFloat64(h.m.disconnects.WithLabelValues("write_error")),
						testutil.ToFloat64(h.m.disconnects.WithLabelValues("keepalive_timeout")))
				}
				sent.Add(int64(clients))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent.Load()), "ns/delivery")
			for _, c := range conns {
				_ = c.Close()
			}
			readers.Wait()
		})
	}
}

// seqOf extracts "seq" from a frame without a full JSON decode.
func seqOf(data []byte) uint64 {
	i := bytes.Index(data, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	j := i + 6
	k := j
	for k < len(data) && data[k] >= '0' && data[k] <= '9' {
		k++
	}
	n, _ := strconv.ParseUint(string(data[j:k]), 10, 64)
	return n
}

// BenchmarkConnectionMemory connects b.N idle websocket clients and reports
// the server-side memory per connection (heap in use plus goroutine
// stacks). The clients are raw TCP connections that only do the handshake,
// so they add next to nothing on the measuring side. Run with e.g.
// -benchtime 2000x.
func BenchmarkConnectionMemory(b *testing.B) {
	h := newTestHeatmap(b, func(c *Config) { c.MaxConnections = 20000 })
	f := newFeeder(h)
	for _, k := range benchKeys(20) {
		f.feed(k, t0, 20, 5)
	}
	h.tick(t0.Add(time.Second))
	addr := strings.TrimPrefix(serve(b, h), "http://")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, b.N)
	buf := make([]byte, 4096)
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			b.Fatal(err)
		}
		// Read the 101 response (and whatever part of the snapshot follows).
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := c.Read(buf)
		if err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101")) {
			b.Fatalf("handshake: %v %q", err, buf[:n])
		}
	}
	waitFor(b, "all connections registered", func() bool { return h.connCount() == len(conns) })
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapInuse) - float64(before.HeapInuse)
	stack := float64(after.StackInuse) - float64(before.StackInuse)
	b.ReportMetric((heap+stack)/float64(len(conns)), "bytes/conn")
	b.ReportMetric(stack/float64(len(conns)), "stack-bytes/conn")
	for _, c := range conns {
		_ = c.Close()
	}
	waitFor(b, "all connections closed", func() bool { return h.connCount() == 0 })
}
