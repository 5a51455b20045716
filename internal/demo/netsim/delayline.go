package netsim

import (
	"container/heap"
	"sync"
	"time"
)

// delayLine releases queued sends at their due time, from one goroutine.
// It is bounded: when full, push refuses and the caller counts a drop,
// which is what a real router's queue does too.
type delayLine struct {
	mu     sync.Mutex
	q      sendHeap
	limit  int
	seq    uint64
	wake   chan struct{}
	closed chan struct{}
	done   chan struct{}
}

type pendingSend struct {
	at   time.Time
	seq  uint64 // keeps equal due times in arrival order
	send func()
}

type sendHeap []pendingSend

func (h sendHeap) Len() int { return len(h) }
func (h sendHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h sendHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sendHeap) Push(x any)   { *h = append(*h, x.(pendingSend)) }
func (h *sendHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = pendingSend{}
	*h = old[:len(old)-1]
	return x
}

func newDelayLine(limit int) *delayLine {
	d := &delayLine{limit: limit, wake: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

// push schedules send at time at; false means the line is full.
func (d *delayLine) push(at time.Time, send func()) bool {
	d.mu.Lock()
	if len(d.q) >= d.limit {
		d.mu.Unlock()
		return false
	}
	d.seq++
	heap.Push(&d.q, pendingSend{at: at, seq: d.seq, send: send})
	first := d.q[0].seq == d.seq
	d.mu.Unlock()
	if first {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	return true
}

func (d *delayLine) run() {
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		var due []func()
		now := time.Now()
		for len(d.q) > 0 && !d.q[0].at.After(now) {
			due = append(due, heap.Pop(&d.q).(pendingSend).send)
		}
		wait := time.Hour
		if len(d.q) > 0 {
			wait = d.q[0].at.Sub(now)
		}
		d.mu.Unlock()
		for _, send := range due {
			send()
		}
		timer.Reset(wait)
		select {
		case <-d.closed:
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// close stops the line; queued sends are discarded.
func (d *delayLine) close() {
	close(d.closed)
	<-d.done
}
