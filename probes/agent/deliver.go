package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bantay-noc/bantay/probes/queue"
)

// outageExporter wraps an uplink's OTLP exporter with what the probe does
// when the collector does not acknowledge an export.
//
// With a queue (queue.dir), an export the collector did not answer, or
// refused with a retryable error, is appended to the uplink's on-disk
// queue as the serialized request (flight.body), its points keeping the
// time they were measured. After every export of fresh data that the
// collector accepts, up to replayPerExport queued requests follow it,
// oldest first: the backlog drains at a bounded rate, and fresh data always
// goes first, so the live heatmap never waits for the backlog (the store
// takes the older points within its out_of_order_window). A queued request
// the collector refuses permanently is dropped and counted (retrying it
// would block the queue forever).
//
// Trouble is logged once per outage: a warning at the first failed export
// saying why — the collector unreachable, or refusing the data (wholly or
// in part) in its own words — and an info line "delivered again after
// <duration>" with what was queued and dropped meanwhile at the first full
// success. A failure of another kind during the same outage (the collector
// comes back but refuses) is logged once too.
//
// It swallows the export error. The SDK would otherwise hand every failure
// to the global OTel error handler, which logs once per export interval;
// the queue (or, without one, the next cumulative export) is the retry.
type outageExporter struct {
	sdkmetric.Exporter
	logger *slog.Logger
	now    func() time.Time
	// silent suppresses the log lines of an exporter being discarded.
	silent atomic.Bool
	// queue is nil without queue.dir.
	queue           *queue.Queue
	queuePath       string
	replayPerExport int

	mu        sync.Mutex
	downSince time.Time // zero while the collector accepts exports
	failed    int       // exports failed in the current outage
	logged    trouble   // the troubles logged in the current outage
	last      trouble   // the latest export's trouble
	lastErr   error
	// lastPoints is the size of the latest failed fresh export, and
	// lastQueued whether it is safe on disk.
	lastPoints int
	lastQueued bool
	// Figures of the current outage, for the recovery line.
	outageQueued, outagePoints int
	outageDrops0               uint64 // the queue's drops when it began
	queueErrLogged             bool
	// backlog is set while queued requests are being replayed, for the
	// line that says the backlog is delivered.
	backlog bool

	// For the probe's own metrics.
	lastSuccess time.Time
	failures    map[string]int64 // by cause
	replayed    int64
}

// Delivery failure causes, as the bantay.probe.export.failures metric
// names them.
const (
	causeUnreachable = "unreachable"
	causeRefused     = "refused"
	causePartial     = "partial"
	causeQueueWrite  = "queue_write"
)

func (t trouble) cause() string {
	switch t {
	case troubleRefused:
		return causeRefused
	case troublePartial:
		return causePartial
	}
	return causeUnreachable
}

func (e *outageExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	at := e.now()
	f := &flight{keep: e.queue != nil}
	err := e.Exporter.Export(withFlight(ctx, f), rm)
	if e.silent.Load() {
		return nil
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		// The reader is shutting down and abandoned this export; its
		// Shutdown exports everything again right away, and that result
		// is the one that counts. Not an outage (a timeout would be
		// DeadlineExceeded, and is one).
		return nil
	}
	if err == nil {
		e.delivered()
	} else {
		t, msg := diagnose(err, &f.answer)
		points := countPoints(rm)
		queued := false
		if t == troubleUnreachable && f.body != nil {
			queued = e.enqueue(at, points, f.body)
		}
		e.failure(t, msg, err, points, queued)
		if t == troubleUnreachable {
			return nil
		}
		if t == troublePartial {
			e.mu.Lock()
			e.lastSuccess = e.now() // the rest was stored
			e.mu.Unlock()
		}
	}
	if e.queue != nil {
		e.replay(ctx)
	}
	return nil
}

// enqueue appends a request the collector did not acknowledge to the
// queue, reporting whether it is there.
func (e *outageExporter) enqueue(at time.Time, points int, body []byte) bool {
	err := e.queue.Append(at, points, body)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.countFailure(causeQueueWrite)
		if !e.queueErrLogged {
			e.queueErrLogged = true
			e.logger.Error("could not queue an undelivered export on disk; its measurements are lost", "queue", e.queuePath, "points", points, "error", err)
		}
		return false
	}
	e.queueErrLogged = false
	e.outageQueued++
	e.outagePoints += points
	return true
}

// replay sends up to replayPerExport queued requests, oldest first,
// stopping at the first the collector does not acknowledge.
func (e *outageExporter) replay(ctx context.Context) {
	items, err := e.queue.Peek(e.replayPerExport)
	if err != nil {
		e.logger.Error("could not read the queue", "queue", e.queuePath, "error", err)
		return
	}
	for _, it := range items {
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		e.backlog = true
		e.mu.Unlock()
		f := &flight{replay: it.Payload}
		err := e.Exporter.Export(withFlight(ctx, f), &metricdata.ResourceMetrics{})
		if err != nil && ctx.Err() != nil {
			// Shutting down, or out of time. A timeout is a counted failure
			// but not by itself an outage (the next fresh export says
			// whether the collector is there). Either way it stays queued:
			// the collector may have stored it, so it may arrive twice —
			// at least once, as OTLP delivery is.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				e.mu.Lock()
				e.countFailure(causeUnreachable)
				e.mu.Unlock()
			}
			return
		}
		cause := queue.Cause("")
		if err != nil {
			t, msg := diagnose(err, &f.answer)
			if t == troubleUnreachable {
				e.failure(t, msg, err, it.Points, true)
				return
			}
			// The collector answered (the fresh export before this one
			// was accepted): not an outage, but data lost, so each one
			// is logged.
			e.mu.Lock()
			e.countFailure(t.cause())
			e.mu.Unlock()
			if t == troubleRefused {
				cause = queue.CauseRefused
				e.logger.Warn("queued request refused by the collector and dropped: "+msg, "measured", it.Time, "points", it.Points, "error", err)
			} else {
				e.logger.Warn("queued request partly refused by the collector: "+msg+"; the rest was stored", "measured", it.Time, "error", err)
			}
		}
		if err := e.queue.Remove(it.ID, cause); err != nil {
			e.logger.Error("could not update the queue", "queue", e.queuePath, "error", err)
			return
		}
		if cause == "" {
			e.mu.Lock()
			e.replayed++
			e.mu.Unlock()
		}
	}
	s := e.queue.Stats()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.backlog && s.Requests == 0 {
		e.backlog = false
		e.logger.Info("queued backlog delivered", "replayed_total", e.replayed, "dropped_total", sum(s.Dropped))
	}
}

// delivered records a fully accepted export and logs the end of an outage.
func (e *outageExporter) delivered() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastSuccess = e.now()
	if !e.downSince.IsZero() {
		d := e.now().Sub(e.downSince).Round(time.Millisecond)
		if e.queue == nil {
			e.logger.Info(fmt.Sprintf("delivered again after %s", d), "outage", d, "failed_exports", e.failed)
		} else {
			s := e.queue.Stats()
			dropped := sum(s.Dropped) - e.outageDrops0
			e.logger.Info(fmt.Sprintf("delivered again after %s; %d requests (%d points) were queued meanwhile and %d dropped; sending the %d queued, oldest first",
				d, e.outageQueued, e.outagePoints, dropped, s.Requests),
				"outage", d, "failed_exports", e.failed, "queued_requests", e.outageQueued, "queued_points", e.outagePoints,
				"dropped_requests", dropped, "dropped_by_cause", s.Dropped, "backlog_requests", s.Requests, "backlog_points", s.Points)
		}
	}
	e.downSince, e.failed, e.logged, e.last, e.lastErr = time.Time{}, 0, 0, 0, nil
	e.lastPoints, e.lastQueued, e.outageQueued, e.outagePoints = 0, false, 0, 0
}

// failure records an export (fresh, or a replay) that was not delivered in
// full, and logs its trouble the first time in an outage. queued says the
// data is safe in the queue.
func (e *outageExporter) failure(t trouble, msg string, err error, points int, queued bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.downSince.IsZero() {
		e.downSince = e.now()
		if e.queue != nil {
			e.outageDrops0 = sum(e.queue.Stats().Dropped)
		}
	}
	e.failed++
	e.countFailure(t.cause())
	e.last, e.lastErr, e.lastPoints, e.lastQueued = t, err, points, queued
	if e.logged&t != 0 {
		return
	}
	e.logged |= t
	switch t {
	case troubleRefused:
		e.logger.Warn(t.what()+": "+msg+"; the collector is reachable: check its log and this probe's configuration", "error", err)
	case troublePartial:
		e.logger.Warn(t.what()+": "+msg+"; the rest was stored", "error", err)
	default:
		if e.queue != nil {
			e.logger.Warn(t.what()+"; measuring continues, exports are queued on disk and sent when it is back", "queue", e.queuePath, "error", err)
		} else {
			e.logger.Warn(t.what()+"; measuring continues and everything is sent when it is back", "error", err)
		}
	}
}

// undelivered returns the last export error while exports fail, unless
// what failed is safe in the queue.
func (e *outageExporter) undelivered() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.downSince.IsZero() || e.lastQueued {
		return nil
	}
	return fmt.Errorf("%s since %s (%d points in the latest export): %w", e.last.what(), e.downSince.Format(time.RFC3339), e.lastPoints, e.lastErr)
}

// close closes the queue, if any.
func (e *outageExporter) close() error {
	if e.queue == nil {
		return nil
	}
	return e.queue.Close()
}

// countFailure counts one delivery failure; e.mu is held.
func (e *outageExporter) countFailure(cause string) {
	if e.failures == nil {
		e.failures = map[string]int64{}
	}
	e.failures[cause]++
}

func sum(m map[queue.Cause]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// countPoints counts the data points of an export.
func countPoints(rm *metricdata.ResourceMetrics) int {
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				n += len(d.DataPoints)
			case metricdata.Histogram[int64]:
				n += len(d.DataPoints)
			case metricdata.Sum[int64]:
				n += len(d.DataPoints)
			case metricdata.Sum[float64]:
				n += len(d.DataPoints)
			case metricdata.Gauge[int64]:
				n += len(d.DataPoints)
			case metricdata.Gauge[float64]:
				n += len(d.DataPoints)
			}
		}
	}
	return n
}
