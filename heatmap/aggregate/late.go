package aggregate

import (
	"math"
	"time"
)

// Late points: a probe that queued its exports through a collector outage
// (probes' queue.dir) delivers fresh data first and then the backlog,
// oldest first (docs/probe.md). The first fresh point after the gap carries
// the whole outage's increase of its cumulative stream and lands in the
// recovery slot; the backlog's points are older than it. Instead of
// refusing them as out of order, a stream that has just had a gap keeps a
// cursor at its last point before the gap (backfill): each backlog point
// older than the recovery point and newer than the cursor adds its increase
// over the cursor to the slot it was measured in, takes the same amount
// back from the recovery slot (when it belongs to the same run of the
// counter), and moves the cursor. Those slots are marked late
// (lateSlots): the drill-down shows them as measured data that arrived
// after newer data did.

// gapFactor: an in-order point whose gap to its predecessor exceeds this
// many probe intervals opens a backfill (a backlog may follow it).
const gapFactor = 2

// resLate counts a backlog point added to the slot it was measured in.
const resLate = "late"

// backfill is a stream's state for a backlog that may follow a gap.
type backfill struct {
	// The cursor: the newest point the backlog has reached, first the
	// last point before the gap. Its cumulative values.
	startNs, tNs int64
	counts       []uint64
	sum, value   float64
	// The recovery point, whose increase covers the gap, and what of it
	// is still in its slot. Only points of its run (startNs) take from
	// it: a probe restarted during the outage started a new run, and the
	// recovery point's increase holds only that run's.
	lumpSlot, lumpStartNs, lumpTNs int64
	lumpCounts                     []uint64
	lumpSum, lumpValue             float64
}

// openBackfill is called for an in-order point after a gap (more than
// gapFactor probe intervals), before the stream's values move to it: it
// starts a backfill from the stream's current values (its previous point,
// prevStartNs/prevNs) up to this point, whose increase (d and sum for a
// histogram, dv for a counter, as added to slot) is the lump.
func (a *Aggregator) openBackfill(st *stream, prevStartNs, prevNs, slot, startNs, tNs int64, d []uint64, sum, dv float64) {
	f := st.fill
	if f == nil {
		f = &backfill{}
		if st.counts != nil { // a histogram
			f.counts, f.lumpCounts = make([]uint64, len(st.counts)), make([]uint64, len(st.counts))
		}
		st.fill = f
	}
	f.startNs, f.tNs, f.sum, f.value = prevStartNs, prevNs, st.sum, st.value
	copy(f.counts, st.counts)
	f.lumpSlot, f.lumpStartNs, f.lumpTNs = slot, startNs, tNs
	copy(f.lumpCounts, d)
	f.lumpSum, f.lumpValue = sum, dv
}

// backfillPoint adds an out-of-order point of st to the slot it was
// measured in, if it lies between the stream's backfill cursor and the
// recovery point; false leaves it out of order. Caller holds a.mu and has
// folded a histogram into its layout's buffer (buffers).
func (a *Aggregator) backfillPoint(st *stream, c *cell, p *Point, startNs, tNs int64) bool {
	f := st.fill
	if f == nil || tNs <= f.tNs || tNs >= f.lumpTNs {
		return false
	}
	slot := a.slotOf(tNs / int64(time.Millisecond))
	if !c.ring.inRing(slot) {
		return false
	}
	// A new run of the counter (the probe restarted): its whole value is
	// the increase, as for a reset in order.
	whole := startNs != 0 && f.startNs != 0 && startNs != f.startNs
	takeLump := startNs == f.lumpStartNs && c.ring.inRing(f.lumpSlot)
	switch p.Kind {
	case KindLatency, KindLatencyNative:
		cur, d := a.buffers(p.Kind)
		for i := range d {
			switch {
			case whole:
				d[i] = cur[i]
			case cur[i] < f.counts[i]:
				whole = true // went down: a reset
			default:
				d[i] = cur[i] - f.counts[i]
			}
		}
		if whole {
			copy(d, cur)
		}
		sum := p.Sum
		if !whole {
			sum -= f.sum
		}
		if math.IsNaN(sum) || sum < 0 {
			sum = 0
		}
		if takeLump {
			for i := range d {
				d[i] = min(d[i], f.lumpCounts[i])
				f.lumpCounts[i] -= d[i]
			}
			sum = min(sum, f.lumpSum)
			f.lumpSum -= sum
			a.takeLatency(c, p, f.lumpSlot, d, sum)
		}
		a.addLatency(c, p, slot, d, sum)
		copy(f.counts, cur)
		f.sum = p.Sum
	default:
		ctr, ok := counterOf(p.Kind)
		if !ok {
			break
		}
		d := p.Value - f.value
		if whole || d < 0 {
			d = p.Value
		}
		if takeLump {
			d = min(d, f.lumpValue)
			f.lumpValue -= d
			c.ring.addCounter(f.lumpSlot, ctr, -d)
		}
		if d > 0 && !math.IsInf(d, 0) {
			c.ring.addCounter(slot, ctr, d)
		}
		f.value = p.Value
	}
	f.startNs, f.tNs = startNs, tNs
	c.markLate(slot, c.ring.n)
	a.count(p.Kind, resLate)
	return true
}

// lateSlots marks the slots of a cell that received late points. It is
// allocated at a cell's first late point. Each position keeps the absolute
// slot it counts for, so a position reused by a newer slot needs no
// clearing when the ring moves on.
type lateSlots struct {
	slot  []int64
	count []uint32
	// oldest is the oldest slot marked since TakeBackfilled; 0: none.
	oldest int64
}

// TakeBackfilled returns how many of cell id's newest drill-down columns,
// brought to now, cover every slot that received late points since the
// last call (0: none), so a live drill-down can re-send them.
func (a *Aggregator) TakeBackfilled(id string, now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.byID[id]
	if !ok || c.late == nil || c.late.oldest == 0 {
		return 0
	}
	n := a.slotOf(now.UnixMilli()) - c.late.oldest + 1
	c.late.oldest = 0
	return int(max(0, min(n, c.ring.n)))
}

// markLate counts one late point in slot s of a ring of n slots.
func (c *cell) markLate(s, n int64) {
	if c.late == nil {
		c.late = &lateSlots{slot: make([]int64, n), count: make([]uint32, n)}
	}
	p := s % n
	if c.late.slot[p] != s {
		c.late.slot[p], c.late.count[p] = s, 0
	}
	c.late.count[p]++
	if c.late.oldest == 0 || s < c.late.oldest {
		c.late.oldest = s
	}
}

// lateIn is the number of late points slot s received.
func (c *cell) lateIn(s int64) uint32 {
	if c.late == nil {
		return 0
	}
	p := s % int64(len(c.late.slot))
	if c.late.slot[p] != s {
		return 0
	}
	return c.late.count[p]
}

// takeHistogram removes what addHistogram added: bucket counts (at most what
// the slot holds) and sum from slot s, if it is still in the ring.
func (r *ring) takeHistogram(s int64, counts []uint64, sum float64) {
	if s > r.head || s <= r.head-r.n || s <= 0 {
		return
	}
	p := r.pos(s)
	base := p * int64(r.nb)
	sum32 := min(float32(sum), r.sums[p])
	r.sums[p] -= sum32
	for i := range r.wins {
		if w := &r.wins[i]; s > r.head-w.slots {
			w.sum -= float64(sum32)
		}
	}
	for b, d := range counts {
		take := min(d, uint64(r.counts[base+int64(b)]))
		if take == 0 {
			continue
		}
		r.counts[base+int64(b)] -= uint16(take)
		for i := range r.wins {
			if w := &r.wins[i]; s > r.head-w.slots {
				w.counts[b] -= take
			}
		}
	}
}
