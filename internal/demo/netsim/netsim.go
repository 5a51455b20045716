// Package netsim is "netem in user space": impairing proxies that sit in
// front of real servers and add the delay, jitter and loss of a Philippine
// carrier path, for the demo and for tests (tc netem is not available on
// the machines Bantay is developed and tested on).
//
// The profile applied to a packet is chosen by the client's source IP. In
// the demo every probe uplink binds its own 127.0.x.y address, so the source
// address says which (city, carrier, network type) the packet comes from,
// and each destination city has its own proxy with its own Table.
package netsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Profile is the impairment of one path.
//
// The round-trip time of a packet is Base plus a queueing delay whose mean
// is Jitter: each direction adds Base/2 plus an exponentially distributed
// delay with mean Jitter/2, the usual shape of latency on a loaded access
// network (a hard floor, a long tail on the right). Loss is the round-trip
// loss ratio; it is split evenly between the two directions.
type Profile struct {
	Base   time.Duration
	Jitter time.Duration
	Loss   float64
}

// Validate reports a profile that cannot be applied.
func (p Profile) Validate() error {
	switch {
	case p.Base < 0:
		return fmt.Errorf("netsim: base %s is negative", p.Base)
	case p.Jitter < 0:
		return fmt.Errorf("netsim: jitter %s is negative", p.Jitter)
	case p.Loss < 0 || p.Loss >= 1 || math.IsNaN(p.Loss):
		return fmt.Errorf("netsim: loss %v is not in [0, 1)", p.Loss)
	}
	return nil
}

// String shows a profile the way an operator reads one.
func (p Profile) String() string {
	return fmt.Sprintf("rtt %s + ~%s jitter, %.1f%% loss", p.Base, p.Jitter, p.Loss*100)
}

// Table picks a profile by the client's source address. It is safe for
// concurrent use and may be changed while proxies use it (to stage an
// incident in a demo).
type Table struct {
	mu    sync.RWMutex
	def   Profile
	bySrc map[netip.Addr]Profile
}

// NewTable returns a table whose unknown sources get def.
func NewTable(def Profile) *Table {
	return &Table{def: def, bySrc: make(map[netip.Addr]Profile)}
}

// Set applies p to packets from src.
func (t *Table) Set(src netip.Addr, p Profile) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bySrc[src.Unmap()] = p
	return nil
}

// Lookup returns the profile for packets from src.
func (t *Table) Lookup(src netip.Addr) Profile {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if p, ok := t.bySrc[src.Unmap()]; ok {
		return p
	}
	return t.def
}

// sampler draws delays and losses from one seeded generator, so a run with
// the same seed and the same packet order is reproducible.
type sampler struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func newSampler(seed uint64) *sampler {
	return &sampler{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// oneWay samples the delay of one direction.
func (s *sampler) oneWay(p Profile) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := p.Base / 2
	if p.Jitter > 0 {
		d += time.Duration(s.rng.ExpFloat64() * float64(p.Jitter) / 2)
	}
	return d
}

// lost decides whether one direction drops the packet: probability
// 1-sqrt(1-Loss), so that both directions together lose Loss.
func (s *sampler) lost(p Profile) bool {
	if p.Loss <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < 1-math.Sqrt(1-p.Loss)
}
