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

// Options tune a proxy. The zero value is usable.
type Options struct {
	// Seed makes the impairment reproducible; the same seed gives the same
	// sequence of delays and losses.
	Seed uint64
	// MaxFlows bounds per-client state: UDP flows (one upstream socket per
	// client address) or concurrent TCP connections. Default 1024.
	MaxFlows int
	// IdleTimeout ends a UDP flow with no traffic. Default 1 minute.
	IdleTimeout time.Duration
	// MaxQueued bounds the packets waiting in the delay line. Default 8192.
	MaxQueued int
}

func (o Options) withDefaults() Options {
	if o.MaxFlows <= 0 {
		o.MaxFlows = 1024
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Minute
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 8192
	}
	return o
}

// Stats are a proxy's counters since it started.
type Stats struct {
	// Forwarded counts datagrams (UDP) or connections (TCP) passed on.
	Forwarded uint64
	// Lost counts datagrams dropped on purpose by the profile's loss.
	Lost uint64
	// Overflow counts datagrams dropped because the delay line was full.
	Overflow uint64
	// Evicted counts flows ended to stay within MaxFlows, and TCP
	// connections refused for the same reason.
	Evicted uint64
	// Flows is the number of flows (or TCP connections) open now.
	Flows int
}

// UDPProxy forwards datagrams between clients and one upstream server,
// delaying each direction by half a sampled round trip and dropping with
// the profile's loss.
type UDPProxy struct {
	conn     *net.UDPConn
	upstream *net.UDPAddr
	table    *Table
	opts     Options
	sample   *sampler
	line     *delayLine

	mu    sync.Mutex
	flows map[netip.AddrPort]*udpFlow

	forwarded, lost, overflow, evicted atomic.Uint64

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup
}

type udpFlow struct {
	client     netip.AddrPort
	upstream   *net.UDPConn
	lastActive atomic.Int64 // unix nanos
}

// NewUDPProxy listens on listen (e.g. "127.0.0.1:0") and forwards to upstream.
func NewUDPProxy(listen, upstream string, table *Table, opts Options) (*UDPProxy, error) {
	if table == nil {
		return nil, errors.New("netsim: table is nil")
	}
	up, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		return nil, fmt.Errorf("netsim: upstream %q: %w", upstream, err)
	}
	laddr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("netsim: listen %q: %w", listen, err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("netsim: %w", err)
	}
	opts = opts.withDefaults()
	p := &UDPProxy{
		conn: conn, upstream: up, table: table, opts: opts,
		sample:  newSampler(opts.Seed),
		line:    newDelayLine(opts.MaxQueued),
		flows:   make(map[netip.AddrPort]*udpFlow),
		closing: make(chan struct{}),
	}
	p.wg.Add(2)
	go p.serve()
	go p.reapIdle()
	return p, nil
}

// Addr is where clients send to.
func (p *UDPProxy) Addr() net.Addr { return p.conn.LocalAddr() }

// Stats returns a snapshot of the counters.
func (p *UDPProxy) Stats() Stats {
	p.mu.Lock()
	n := len(p.flows)
	p.mu.Unlock()
	return Stats{Forwarded: p.forwarded.Load(), Lost: p.lost.Load(), Overflow: p.overflow.Load(), Evicted: p.evicted.Load(), Flows: n}
}

func (p *UDPProxy) serve() {
	defer p.wg.Done()
	buf := make([]byte, 64*1024)
	for {
		n, client, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // transient; do not spin on it
			continue
		}
		f, err := p.flow(client)
		if err != nil {
			continue
		}
		f.lastActive.Store(time.Now().UnixNano())
		p.impair(p.table.Lookup(client.Addr()), buf[:n], func(b []byte) { f.upstream.Write(b) })
	}
}

// impair drops or schedules one datagram in one direction.
func (p *UDPProxy) impair(prof Profile, b []byte, send func([]byte)) {
	if p.sample.lost(prof) {
		p.lost.Add(1)
		return
	}
	pkt := append([]byte(nil), b...)
	if !p.line.push(time.Now().Add(p.sample.oneWay(prof)), func() { send(pkt) }) {
		p.overflow.Add(1)
		return
	}
	p.forwarded.Add(1)
}

// flow returns the client's flow, creating it (and evicting the least
// recently active flow when at MaxFlows).
func (p *UDPProxy) flow(client netip.AddrPort) (*udpFlow, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.flows[client]; ok {
		return f, nil
	}
	select {
	case <-p.closing:
		return nil, net.ErrClosed
	default:
	}
	if len(p.flows) >= p.opts.MaxFlows {
		var oldest *udpFlow
		for _, f := range p.flows {
			if oldest == nil || f.lastActive.Load() < oldest.lastActive.Load() {
				oldest = f
			}
		}
		p.endFlowLocked(oldest)
		p.evicted.Add(1)
	}
	up, err := net.DialUDP("udp", nil, p.upstream)
	if err != nil {
		return nil, err
	}
	f := &udpFlow{client: client, upstream: up}
	f.lastActive.Store(time.Now().UnixNano())
	p.flows[client] = f
	p.wg.Add(1)
	go p.replies(f)
	return f, nil
}

// replies carries the upstream's answers back to the client.
func (p *UDPProxy) replies(f *udpFlow) {
	defer p.wg.Done()
	buf := make([]byte, 64*1024)
	for {
		n, err := f.upstream.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors from the upstream (port unreachable) surface
			// here; a real path would lose those packets, so go on.
			time.Sleep(time.Millisecond)
			continue
		}
		f.lastActive.Store(time.Now().UnixNano())
		// Looked up per packet, so a Table change (a staged incident)
		// applies at once, also to flows that are already open.
		p.impair(p.table.Lookup(f.client.Addr()), buf[:n], func(b []byte) { p.conn.WriteToUDPAddrPort(b, f.client) })
	}
}

func (p *UDPProxy) endFlowLocked(f *udpFlow) {
	delete(p.flows, f.client)
	f.upstream.Close()
}

func (p *UDPProxy) reapIdle() {
	defer p.wg.Done()
	tick := time.NewTicker(max(p.opts.IdleTimeout/2, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-p.closing:
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-p.opts.IdleTimeout).UnixNano()
		p.mu.Lock()
		for _, f := range p.flows {
			if f.lastActive.Load() < cutoff {
				p.endFlowLocked(f)
			}
		}
		p.mu.Unlock()
	}
}

// Close stops the proxy, its flows and its delay line, and waits for every
// goroutine it started. Datagrams still queued are discarded.
func (p *UDPProxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closing)
		err = p.conn.Close()
		p.mu.Lock()
		for _, f := range p.flows {
			p.endFlowLocked(f)
		}
		p.mu.Unlock()
		p.wg.Wait()
		p.line.close()
	})
	return err
}
