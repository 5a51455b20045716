package hub

import (
	"sync"
	"time"
)

// pingFrame is the keepalive ping every client gets each ping_interval.
var pingFrame = controlFrame("", opPing, nil)

// writer is one of the hub's few writer goroutines (`writers`, one per
// core by default). Each connection belongs to one; a connection with
// something to send is put on its writer's ready list, and the writer
// writes each one's frames in one non-blocking vectored write. A tick's
// frame is thus written to thousands of sockets by a couple of goroutines
// that never wait, instead of by thousands of goroutines woken at once
// and queued on the scheduler.
type writer struct {
	mu    sync.Mutex
	ready []*client
	wake  chan struct{}
}

func newWriter() *writer { return &writer{wake: make(chan struct{}, 1)} }

// add puts c on the ready list. c.scheduled keeps it there at most once.
func (w *writer) add(c *client) {
	w.mu.Lock()
	w.ready = append(w.ready, c)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes to the ready clients until stop is closed.
func (w *writer) run(stop <-chan struct{}) {
	var batch []*client
	for {
		select {
		case <-stop:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		batch, w.ready = w.ready, batch[:0]
		w.mu.Unlock()
		for i, c := range batch {
			c.flush()
			batch[i] = nil
		}
	}
}

// startWriters starts the writers and the keepalive pinger; Close stops them.
func (h *Hub) startWriters() {
	h.stop = make(chan struct{})
	for range h.cfg.Writers {
		w := newWriter()
		h.writers = append(h.writers, w)
		h.loops.Add(1)
		go func() {
			defer h.loops.Done()
			w.run(h.stop)
		}()
	}
	h.loops.Add(1)
	go func() {
		defer h.loops.Done()
		// One ticker for every connection rather than one each.
		t := time.NewTicker(h.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				for _, c := range h.clientList() {
					c.pingDue()
				}
			}
		}
	}()
}

// nextWriter spreads new connections over the writers in turn.
func (h *Hub) nextWriter() *writer {
	return h.writers[int(h.assigned.Add(1))%len(h.writers)]
}

// clientList returns the open connections.
func (h *Hub) clientList() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		out = append(out, c)
	}
	return out
}
