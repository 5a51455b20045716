package failureeventsconnector

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector/internal/metadata"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/logthrottle"
	"github.com/bantay-noc/bantay/internal/metricmodel/pmetricwalk"
)

// Reasons an event is dropped (bantay_failure_events_dropped{reason}).
const (
	dropQueueFull     = "queue_full"
	dropConsumerError = "consumer_error"
)

// failureEvents is the connector: ConsumeMetrics folds points (no I/O,
// O(points)) and returns nil; finished bursts go through a bounded channel
// to a goroutine that batches them into log records and hands them to the
// logs pipeline. The folding state is split by probe into shards, each with
// its own lock, so that concurrent exports of different probes do not wait
// for each other: with one lock, a trace at 200,000 series put 92 % of the
// collector's mutex wait here.
type failureEvents struct {
	cfg  *Config
	next consumer.Logs
	now  func() time.Time

	// mu guards started and stopped.
	mu     sync.Mutex
	shards [numShards]shard

	queue chan events.Event
	// held is what run had batched but not yet handed on when it
	// stopped; Shutdown hands it on (read after done is closed).
	held    []events.Event
	stop    chan struct{}
	done    chan struct{}
	started bool
	stopped bool

	attrs    metric.MeasurementOption
	pointsC  metric.Int64Counter
	emittedC metric.Int64Counter
	droppedC metric.Int64Counter
	streamsG metric.Int64Gauge
	warnings *logthrottle.Logger // bad input, at most once a minute per kind
}

var _ connector.Metrics = (*failureEvents)(nil)

// numShards is how many folders the streams are spread over, by probe:
// well above the exports a 2- to 8-core collector runs at once.
const numShards = 16

// shard is one folder and the results of its points not yet counted.
type shard struct {
	mu     sync.Mutex
	folder *folder
	// counts collects results while the shard is held, so the counter
	// is updated once per result and hold, not once per point.
	counts  map[string]int64
	stopped bool // after Shutdown emitted its open bursts
}

// shardOf is the shard of a probe instance (FNV-1a).
func (c *failureEvents) shardOf(instance string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(instance); i++ {
		h = (h ^ uint32(instance[i])) * 16777619
	}
	return &c.shards[h%numShards]
}

func newConnector(cfg *Config, set connector.Settings, next consumer.Logs) (*failureEvents, error) {
	c := &failureEvents{
		cfg:      cfg,
		next:     next,
		now:      time.Now,
		queue:    make(chan events.Event, cfg.QueueSize),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		attrs:    metric.WithAttributes(attribute.String("connector", set.ID.String())),
		warnings: logthrottle.New(set.Logger, time.Minute),
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	c.pointsC, c.emittedC = tel.FailureEventsPoints, tel.FailureEventsEmitted
	c.droppedC, c.streamsG = tel.FailureEventsDropped, tel.FailureEventsStreams
	budget := newStreamBudget(cfg.MaxStreams)
	for i := range c.shards {
		s := &c.shards[i]
		s.counts = map[string]int64{}
		s.folder = newFolder(cfg, c.enqueue, func(result string) { c.countPoint(s, result) }, budget)
	}
	return c, nil
}

// Capabilities: the connector only reads the metrics.
func (c *failureEvents) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// Start starts the goroutine that hands events to the logs pipeline.
func (c *failureEvents) Start(_ context.Context, _ component.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return nil
	}
	c.started = true
	go c.run()
	return nil
}

// ConsumeMetrics folds the failure points into bursts. It always returns
// nil: events are a by-product, and the metrics pipeline (the store's
// acknowledgement to the probe) must never wait on or fail for them.
func (c *failureEvents) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	now := c.now()
	// A probe's metrics come together in its resource: hold its shard
	// across them rather than taking the lock per metric.
	var held *shard
	for instance, m := range pmetricwalk.Metrics(md) {
		if !folds(m) {
			continue
		}
		if s := c.shardOf(instance); s != held {
			c.release(held)
			held = s
			held.mu.Lock()
		}
		if !held.stopped {
			held.folder.metric(instance, m, now)
		}
	}
	c.release(held)
	return nil
}

// release counts the held shard's results and unlocks it.
func (c *failureEvents) release(s *shard) {
	if s == nil {
		return
	}
	for result, n := range s.counts {
		c.pointsC.Add(context.Background(), n, c.attrs, metric.WithAttributes(attribute.String("result", result)))
	}
	clear(s.counts)
	s.mu.Unlock()
}

// enqueue is the folder's emit: never blocks; a full queue drops.
func (c *failureEvents) enqueue(e events.Event) {
	select {
	case c.queue <- e:
	default:
		c.droppedC.Add(context.Background(), 1, c.attrs, metric.WithAttributes(attribute.String("reason", dropQueueFull)))
		c.warnings.Warn(dropQueueFull, "failure_events queue full; probe_failure event dropped",
			zap.Int("queue_size", c.cfg.QueueSize), zap.String("probe", e.Probe))
	}
}

// countPoint runs under s.mu (from s's folder).
func (c *failureEvents) countPoint(s *shard, result string) {
	s.counts[result]++
	switch result {
	case resInvalid:
		c.warnings.Warn(resInvalid, "bantay.probe.failures point without probe, target or reason, or with a negative or non-finite value; ignored (is citytag before this connector?)")
	case resStreamLim:
		c.warnings.Warn(resStreamLim, "failure_events stream limit reached; points of new streams ignored until idle ones expire",
			zap.Int("max_streams", c.cfg.MaxStreams))
	}
}

// run batches queued events into ConsumeLogs calls: max_batch at once, or
// what is there every flush_interval, when silent streams are also checked.
func (c *failureEvents) run() {
	defer close(c.done)
	ticker := time.NewTicker(c.cfg.FlushInterval)
	defer ticker.Stop()
	batch := make([]events.Event, 0, c.cfg.MaxBatch)
	for {
		select {
		case e := <-c.queue:
			batch = append(batch, e)
			if len(batch) >= c.cfg.MaxBatch {
				batch = c.send(context.Background(), batch)
			}
		case <-ticker.C:
			now, n := c.now(), 0
			for i := range c.shards {
				s := &c.shards[i]
				s.mu.Lock()
				s.folder.tick(now)
				n += len(s.folder.streams)
				c.release(s)
			}
			c.streamsG.Record(context.Background(), int64(n), c.attrs)
			batch = c.drain(context.Background(), batch)
		case <-c.stop:
			// Shutdown hands these on, before what is still queued.
			c.held = batch
			return
		}
	}
}

// drain sends what is batched plus everything queued.
func (c *failureEvents) drain(ctx context.Context, batch []events.Event) []events.Event {
	for {
		select {
		case e := <-c.queue:
			batch = append(batch, e)
			if len(batch) >= c.cfg.MaxBatch {
				batch = c.send(ctx, batch)
			}
		default:
			if len(batch) > 0 {
				batch = c.send(ctx, batch)
			}
			return batch
		}
	}
}

// send hands one batch to the logs pipeline. A refusal (e.g. the loki
// exporter's full queue) is counted and logged, never retried here: the
// exporter owns retries, and retrying in a loop would only grow our queue.
func (c *failureEvents) send(ctx context.Context, batch []events.Event) []events.Event {
	err := c.next.ConsumeLogs(ctx, events.ToLogs(batch))
	if err != nil {
		c.droppedC.Add(ctx, int64(len(batch)), c.attrs, metric.WithAttributes(attribute.String("reason", dropConsumerError)))
		c.warnings.Warn(dropConsumerError, "logs pipeline refused probe_failure events; dropped", zap.Int("events", len(batch)), zap.Error(err))
	} else {
		c.emittedC.Add(ctx, int64(len(batch)), c.attrs)
	}
	return batch[:0]
}

// Shutdown stops folding, emits the bursts still open (as they stand: the
// failures happened) and hands every batched and queued event to the logs
// pipeline, within ctx. The collector shuts a connector down before the logs
// pipeline's exporters, so they still take them.
func (c *failureEvents) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	started := c.started
	c.mu.Unlock()
	if started {
		close(c.stop)
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.stopped = true
		s.folder.closeAll()
		c.release(s)
	}
	batch := c.held
	if batch == nil {
		batch = make([]events.Event, 0, c.cfg.MaxBatch)
	}
	c.held = nil
	c.drain(ctx, batch)
	return nil
}
