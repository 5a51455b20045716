package aggregate

import (
	"math"
)

// maxSlotCount is what one uint16 slot bucket can hold. Deltas beyond it are
// clamped (and counted) rather than wrapped, so window sums, which add and
// later subtract exactly what the slot holds, never drift.
const maxSlotCount = math.MaxUint16

// slotCounter is one of the counters a slot sums besides the histogram.
type slotCounter int

const (
	ctrAttempts slotCounter = iota
	ctrFailures
	ctrJitter      // sum of |ΔRTT| of consecutive probes of a round, ms
	ctrJitterPairs // the pairs in ctrJitter
	numCounters
)

// counterOf is the slot counter a counter metric adds to.
func counterOf(k Kind) (slotCounter, bool) {
	switch k {
	case KindAttempts:
		return ctrAttempts, true
	case KindFailures:
		return ctrFailures, true
	case KindJitter:
		return ctrJitter, true
	case KindJitterPairs:
		return ctrJitterPairs, true
	}
	return 0, false
}

// window keeps running sums over the newest `slots` slots of a cell's ring,
// so reading a window costs O(buckets) and not O(slots × buckets).
type window struct {
	slots  int64
	counts []uint64
	sum    float64
	ctr    [numCounters]float64
}

func (w *window) count() uint64 {
	var n uint64
	for _, c := range w.counts {
		n += c
	}
	return n
}

// ring is the fixed-size time × bucket store of one cell: one slot per
// resolution step over the history, plus running window sums. Its memory is
// allocated once when the cell is created and never grows.
type ring struct {
	nb      int   // buckets per slot (bounds + the +Inf bucket)
	n       int64 // slots in the ring
	head    int64 // absolute slot number of the newest slot; 0 before any data
	advance int64 // advances since the last exact recomputation of the sums

	counts []uint16 // n × nb
	used   []uint64 // bit per slot position: holds data (lets moves skip empty slots)
	// lo and hi are, per slot position, the buckets [lo, hi) that can hold
	// counts (addHistogram widens them; empty: 0, 0), so moving past,
	// summing and reading a slot skip the rest: a slot of a native ring
	// holds a few of its 161 buckets (bucket counts fit a byte: at most 65
	// classic, 161 native).
	lo, hi []uint8
	sums   []float32              // n
	ctr    [numCounters][]float32 // n each

	wins []window // the configured windows, then the whole history (baseline)
}

func newRing(nb int, nslots int64, windowSlots []int64) *ring {
	r := &ring{
		nb:     nb,
		n:      nslots,
		counts: make([]uint16, int64(nb)*nslots),
		used:   make([]uint64, (nslots+63)/64),
		lo:     make([]uint8, nslots),
		hi:     make([]uint8, nslots),
		sums:   make([]float32, nslots),
	}
	for c := range r.ctr {
		r.ctr[c] = make([]float32, nslots)
	}
	all := append(append([]int64(nil), windowSlots...), nslots)
	r.wins = make([]window, len(all))
	for i, s := range all {
		r.wins[i] = window{slots: s, counts: make([]uint64, nb)}
	}
	return r
}

func (r *ring) pos(slot int64) int64 {
	p := slot % r.n
	if p < 0 {
		p += r.n
	}
	return p
}

// moveTo makes `slot` the newest slot: slots that leave a window are
// subtracted from its sums and ring positions that are reused are cleared.
// Moving backwards is a no-op.
func (r *ring) moveTo(slot int64) {
	if slot <= r.head {
		return
	}
	if r.head == 0 || slot-r.head >= r.n {
		// Everything in the ring is older than the whole history.
		clear(r.counts)
		clear(r.used)
		clear(r.lo)
		clear(r.hi)
		clear(r.sums)
		for c := range r.ctr {
			clear(r.ctr[c])
		}
		for i := range r.wins {
			w := &r.wins[i]
			clear(w.counts)
			w.sum, w.ctr = 0, [numCounters]float64{}
		}
		r.head = slot
		return
	}
	for s := r.head + 1; s <= slot; s++ {
		for i := range r.wins {
			w := &r.wins[i]
			r.subtract(w, s-w.slots)
		}
		if p := r.pos(s); r.isUsed(p) {
			base := p * int64(r.nb)
			clear(r.counts[base+int64(r.lo[p]) : base+int64(r.hi[p])])
			r.lo[p], r.hi[p] = 0, 0
			r.sums[p] = 0
			for c := range r.ctr {
				r.ctr[c][p] = 0
			}
			r.used[p/64] &^= 1 << (p % 64)
		}
		r.advance++
	}
	r.head = slot
	// The float sums are added and subtracted in different orders, which can
	// leave rounding residue; recompute them exactly once per ring turn.
	if r.advance >= r.n {
		r.advance = 0
		r.recompute()
	}
}

// subtract removes slot s from window w, if s is still held by the ring.
func (r *ring) subtract(w *window, s int64) {
	if s <= r.head-r.n || s <= 0 {
		return // already cleared
	}
	p := r.pos(s)
	if !r.isUsed(p) {
		return
	}
	base := p * int64(r.nb)
	for b := int(r.lo[p]); b < int(r.hi[p]); b++ {
		w.counts[b] -= uint64(r.counts[base+int64(b)])
	}
	w.sum -= float64(r.sums[p])
	for c := range r.ctr {
		w.ctr[c] -= float64(r.ctr[c][p])
	}
}

func (r *ring) isUsed(p int64) bool { return r.used[p/64]&(1<<(p%64)) != 0 }

func (r *ring) markUsed(p int64) { r.used[p/64] |= 1 << (p % 64) }

func (r *ring) recompute() {
	for i := range r.wins {
		w := &r.wins[i]
		clear(w.counts)
		w.sum, w.ctr = 0, [numCounters]float64{}
		for s := r.head - w.slots + 1; s <= r.head; s++ {
			if s <= 0 {
				continue
			}
			p := r.pos(s)
			base := p * int64(r.nb)
			for b := int(r.lo[p]); b < int(r.hi[p]); b++ {
				w.counts[b] += uint64(r.counts[base+int64(b)])
			}
			w.sum += float64(r.sums[p])
			for c := range r.ctr {
				w.ctr[c] += float64(r.ctr[c][p])
			}
		}
	}
}

// inRing reports whether slot s can still be written (it is not older than
// the history). Slots newer than head are always writable (moveTo first).
func (r *ring) inRing(s int64) bool {
	return r.head == 0 || s > r.head-r.n
}

// addHistogram adds bucket deltas to slot s. It returns how many
// observations were clamped because a slot bucket was full.
func (r *ring) addHistogram(s int64, counts []uint64, sum float64) (clamped uint64) {
	if s > r.head {
		r.moveTo(s)
	}
	p := r.pos(s)
	r.markUsed(p)
	base := p * int64(r.nb)
	sum32 := float32(sum)
	r.sums[p] += sum32
	for i := range r.wins {
		w := &r.wins[i]
		if s > r.head-w.slots {
			w.sum += float64(sum32)
		}
	}
	for b, d := range counts {
		if d == 0 {
			continue
		}
		cur := uint64(r.counts[base+int64(b)])
		add := d
		if cur+add > maxSlotCount {
			add = maxSlotCount - cur
			clamped += d - add
		}
		r.counts[base+int64(b)] = uint16(cur + add)
		if r.lo[p] == r.hi[p] {
			r.lo[p], r.hi[p] = uint8(b), uint8(b+1)
		} else {
			r.lo[p], r.hi[p] = min(r.lo[p], uint8(b)), max(r.hi[p], uint8(b+1))
		}
		for i := range r.wins {
			w := &r.wins[i]
			if s > r.head-w.slots {
				w.counts[b] += add
			}
		}
	}
	return clamped
}

// addCounter adds v to counter c of slot s.
func (r *ring) addCounter(s int64, c slotCounter, v float64) {
	if s > r.head {
		r.moveTo(s)
	}
	p := r.pos(s)
	r.markUsed(p)
	v32 := float32(v)
	r.ctr[c][p] += v32
	for i := range r.wins {
		w := &r.wins[i]
		if s > r.head-w.slots {
			w.ctr[c] += float64(v32)
		}
	}
}

// slot copies slot s's bucket counts into dst (zeros if s is outside the
// ring) and returns its sum and counters.
func (r *ring) slot(s int64, dst []uint64) (sum float64, ctr [numCounters]float64) {
	clear(dst)
	if s > r.head || s <= r.head-r.n || s <= 0 {
		return 0, ctr
	}
	p := r.pos(s)
	base := p * int64(r.nb)
	for b := int(r.lo[p]); b < int(r.hi[p]); b++ {
		dst[b] = uint64(r.counts[base+int64(b)])
	}
	for c := range r.ctr {
		ctr[c] = float64(r.ctr[c][p])
	}
	return float64(r.sums[p]), ctr
}

// memBytes is the ring's heap footprint, for the documented per-cell cost.
func (r *ring) memBytes() int {
	n := len(r.counts)*2 + len(r.used)*8 + len(r.lo) + len(r.hi) + len(r.sums)*4
	for _, c := range r.ctr {
		n += len(c) * 4
	}
	for _, w := range r.wins {
		n += len(w.counts)*8 + 24 + 8 + 8*int(numCounters)
	}
	return n
}
