package events

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Bus hands events from sources inside the collector (citytag's
// rejections, rule reloads) to whoever turns them into log records (the
// bantay_events receiver). Publish never blocks: each subscriber has a
// bounded queue, and an event that does not fit is dropped and counted in
// bantay_events_dropped_total{kind}. A slow or absent Loki can therefore
// never hold back the code that publishes.
//
// Until the first subscriber arrives, up to capacity events are kept in a
// backlog and handed to it, because collector components start in an order
// of the collector's choosing and a source may publish (rules loaded at
// start) before the receiver has subscribed. The backlog is only for that
// gap: once a subscriber has come, events published while there is none
// (between a cancel and the next Subscribe) are kept the same way.
type Bus struct {
	capacity int

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	backlog []Event
	closed  bool

	published *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

type subscription struct {
	ch chan Event
}

// NewBus returns a bus whose subscriber queues (and start-up backlog) hold
// capacity events each, with its metrics registered with reg (nil: not
// registered):
//
//	bantay_events_published_total{kind}  events handed to Publish
//	bantay_events_dropped_total{kind}    events a full queue or backlog refused
//
// It fails for a capacity below 1 or when the metrics are already
// registered with reg.
func NewBus(capacity int, reg prometheus.Registerer) (*Bus, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("events bus: capacity %d is below 1", capacity)
	}
	b := &Bus{
		capacity: capacity,
		subs:     map[*subscription]struct{}{},
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_events_published_total",
			Help: "Events published on the collector's event bus, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_events_dropped_total",
			Help: "Events dropped because a subscriber's queue (or the backlog kept until the first subscriber) was full, by kind.",
		}, []string{"kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.published, b.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("events bus metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Capacity is the bound of each subscriber's queue.
func (b *Bus) Capacity() int { return b.capacity }

// Publish hands e to every subscriber without waiting. Where a queue is
// full the event is dropped for that subscriber and counted. Publishing on
// a closed bus counts the event as dropped.
func (b *Bus) Publish(e Event) {
	kind := string(e.Kind)
	b.published.WithLabelValues(kind).Inc()
	// The sends are non-blocking, so the lock is held briefly; holding it
	// keeps cancel and Close from closing a channel under a send.
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.dropped.WithLabelValues(kind).Inc()
		return
	}
	if len(b.subs) == 0 {
		if len(b.backlog) >= b.capacity {
			b.dropped.WithLabelValues(kind).Inc()
			return
		}
		b.backlog = append(b.backlog, e)
		return
	}
	for s := range b.subs {
		select {
		case s.ch <- e:
		default:
			b.dropped.WithLabelValues(kind).Inc()
		}
	}
}

// Subscribe returns a channel delivering every event published from now on
// (the first subscriber also gets the backlog), in publish order, and a
// cancel function that ends the subscription and closes the channel. The
// channel holds Capacity events; the subscriber must keep reading it, or
// events are dropped (never delayed). On a closed bus the channel is
// returned closed.
func (b *Bus) Subscribe() (<-chan Event, func()) {
	s := &subscription{ch: make(chan Event, b.capacity)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	// The backlog is at most capacity long, so it always fits.
	for _, e := range b.backlog {
		s.ch <- e
	}
	b.backlog = nil
	b.subs[s] = struct{}{}
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if _, ok := b.subs[s]; ok {
				delete(b.subs, s)
				close(s.ch)
			}
		})
	}
}

// Close ends every subscription (closing their channels); what is still in
// the backlog (no subscriber ever came, e.g. no events pipeline is
// configured) and what is published afterwards is dropped and counted. It
// is safe to call more than once.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for s := range b.subs {
		close(s.ch)
	}
	b.subs = nil
	for _, e := range b.backlog {
		b.dropped.WithLabelValues(string(e.Kind)).Inc()
	}
	b.backlog = nil
}
