package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// minRTO is Linux's minimum TCP retransmission timeout.
const minRTO = 200 * time.Millisecond

// TCPProxy forwards TCP connections to one upstream server, delaying the
// data in each direction by half a sampled round trip, so an HTTP request
// through it takes at least one round trip longer.
//
// Two limits of doing this in user space, documented in
// docs/demo-network.md: the handshake with the proxy completes in the
// kernel before the proxy sees the connection, so a bare TCP connect time
// shows no delay; and TCP never loses data, so the profile's loss shows up
// as what a loss costs TCP: a retransmission timeout added to the chunk.
type TCPProxy struct {
	listener net.Listener
	upstream string
	table    *Table
	opts     Options
	sample   *sampler

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	forwarded, lost, evicted atomic.Uint64
	active                   atomic.Int64 // connections being proxied

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewTCPProxy listens on listen and forwards each connection to upstream.
func NewTCPProxy(listen, upstream string, table *Table, opts Options) (*TCPProxy, error) {
	if table == nil {
		return nil, errors.New("netsim: table is nil")
	}
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("netsim: upstream %q: %w", upstream, err)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("netsim: %w", err)
	}
	opts = opts.withDefaults()
	p := &TCPProxy{listener: l, upstream: upstream, table: table, opts: opts,
		sample: newSampler(opts.Seed), conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is where clients connect.
func (p *TCPProxy) Addr() net.Addr { return p.listener.Addr() }

// Stats returns a snapshot of the counters (Forwarded counts connections,
// Lost counts chunks that paid a retransmission timeout).
func (p *TCPProxy) Stats() Stats {
	return Stats{Forwarded: p.forwarded.Load(), Lost: p.lost.Load(), Evicted: p.evicted.Load(), Flows: int(p.active.Load())}
}

func (p *TCPProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// Only this goroutine increments, so check-then-add is exact.
		if p.active.Load() >= int64(p.opts.MaxFlows) {
			p.evicted.Add(1)
			c.Close()
			continue
		}
		p.active.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers a connection so Close can end it; false if closing.
func (p *TCPProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *TCPProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *TCPProxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.active.Add(-1)
	defer client.Close()
	var src netip.Addr
	if a, ok := client.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort().Addr()
	}
	prof := p.table.Lookup(src)
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(client) || !p.track(up) {
		return
	}
	defer p.untrack(client)
	defer p.untrack(up)
	p.forwarded.Add(1)

	var both sync.WaitGroup
	both.Go(func() { p.pipe(up, client, prof) })
	both.Go(func() { p.pipe(client, up, prof) })
	both.Wait()
}

type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies src to dst, releasing each chunk at its due time. Due times
// never decrease, so bytes stay in order as TCP requires; the bounded
// channel pushes back on a fast sender as a TCP window would.
func (p *TCPProxy) pipe(dst, src net.Conn, prof Profile) {
	queue := make(chan chunk, 64)
	go func() {
		defer close(queue)
		var last time.Time
		for {
			buf := make([]byte, 32*1024)
			n, err := src.Read(buf)
			if n > 0 {
				d := p.sample.oneWay(prof)
				if p.sample.lost(prof) {
					p.lost.Add(1)
					d += max(minRTO, prof.Base+2*prof.Jitter)
				}
				at := time.Now().Add(d)
				if at.Before(last) {
					at = last
				}
				last = at
				queue <- chunk{buf[:n], at}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for c := range queue {
		if failed {
			continue // drain so the reader can finish
		}
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			failed = true
			src.Close() // unblocks the reader: the other side is gone
		}
	}
	// Pass the end of stream on, so the other direction can finish too.
	if tc, ok := dst.(*net.TCPConn); ok && !failed {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}

// Close stops accepting, ends every connection and waits for every
// goroutine the proxy started.
func (p *TCPProxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.listener.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
	return err
}
