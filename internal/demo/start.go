package demo

import (
	"context"
	"fmt"
	"time"
)

// Running is a demo started in the background by Start: the end-to-end
// tests and tools that need the whole system up while they work.
type Running struct {
	cancel context.CancelFunc
	exited chan struct{}
	err    error // Run's result, set before exited closes
}

// Start runs the demo in the background and returns once the collector
// answers and the probes run. It returns Run's error if the demo stops
// first, and gives up (stopping it) after startTimeout.
func Start(opts Options, startTimeout time.Duration) (*Running, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		r.err = Run(ctx, opts, func() { close(ready) })
		close(r.exited)
	}()
	select {
	case <-ready:
		return r, nil
	case <-r.exited:
		cancel()
		return nil, fmt.Errorf("demo failed to start: %w", r.err)
	case <-time.After(startTimeout):
		_ = r.Stop(time.Minute)
		return nil, fmt.Errorf("demo not ready after %v", startTimeout)
	}
}

// Exited is closed when the demo has stopped, by Stop or on its own; Err
// then says why.
func (r *Running) Exited() <-chan struct{} { return r.exited }

// Err is Run's result once Exited is closed.
func (r *Running) Err() error {
	select {
	case <-r.exited:
		return r.err
	default:
		return nil
	}
}

// Stop stops the demo in order and returns Run's result, or an error if it
// takes longer than timeout.
func (r *Running) Stop(timeout time.Duration) error {
	r.cancel()
	select {
	case <-r.exited:
		return r.err
	case <-time.After(timeout):
		return fmt.Errorf("demo did not stop within %v", timeout)
	}
}
