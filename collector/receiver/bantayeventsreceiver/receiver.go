package bantayeventsreceiver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/bantay-noc/bantay/collector/receiver/bantayeventsreceiver/internal/metadata"
	"github.com/bantay-noc/bantay/collector/sharedstate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/logthrottle"
)

// format names the data in the receiver's obsreport spans.
const format = "bantay_events"

type eventsReceiver struct {
	cfg    *Config
	set    receiver.Settings
	next   consumer.Logs
	obsrep *receiverhelper.ObsReport

	// queue carries heatmap events from the heatmap's subscriber goroutine
	// to run; the callback never blocks.
	queue chan events.Event
	gaz   *gazetteer.Gazetteer
	// busCh is the bus subscription (nil without a bus).
	busCh     <-chan events.Event
	cancelBus func()
	// stopping turns the heatmap callback into a no-op: the heatmap has no
	// unsubscribe, its subscriptions end when the extension closes it.
	stopping atomic.Bool

	mu       sync.Mutex
	started  bool
	shutdown bool
	stop     chan struct{}
	done     chan struct{}

	attrs    metric.MeasurementOption
	droppedC metric.Int64Counter
	warnings *logthrottle.Logger // at most once a minute per source and reason
}

func newReceiver(cfg *Config, set receiver.Settings, next consumer.Logs) (*eventsReceiver, error) {
	obsrep, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "internal",
		LongLivedCtx:           true,
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	r := &eventsReceiver{
		cfg:      cfg,
		set:      set,
		next:     next,
		obsrep:   obsrep,
		queue:    make(chan events.Event, cfg.QueueSize),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		attrs:    metric.WithAttributes(attribute.String("receiver", set.ID.String())),
		warnings: logthrottle.New(set.Logger, time.Minute),
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	r.droppedC = tel.EventsReceiverDropped
	return r, nil
}

// Start finds the extension, subscribes to its heatmap and event bus, and
// starts handing events to the logs pipeline.
func (r *eventsReceiver) Start(_ context.Context, host component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return nil
	}
	p, err := sharedstate.Find(host, r.cfg.Extension, "bantay_events receiver")
	if err != nil {
		return err
	}
	hm, bus := p.Heatmap(), p.Events()
	if hm == nil && bus == nil {
		return fmt.Errorf("bantay_events receiver: extension %q has neither a heatmap nor an event bus (both are disabled in its config)", r.cfg.Extension)
	}
	if hm != nil {
		r.gaz = hm.Gazetteer()
		hm.Subscribe(r.onHeatmap)
	} else {
		r.set.Logger.Info("extension has no heatmap; path state change events are off", zap.Stringer("extension", r.cfg.Extension))
	}
	if bus != nil {
		r.busCh, r.cancelBus = bus.Subscribe()
	} else {
		r.set.Logger.Info("extension has no event bus; only path state change events are sent", zap.Stringer("extension", r.cfg.Extension))
	}
	r.started = true
	go r.run()
	return nil
}

// onHeatmap runs on the heatmap's subscriber goroutine: convert and queue,
// never block.
func (r *eventsReceiver) onHeatmap(he pathstate.Event) {
	if r.stopping.Load() {
		return
	}
	e, ok := events.FromHeatmap(he, r.gaz)
	if !ok {
		r.drop("heatmap", "unknown_kind", "heatmap event of an unknown kind dropped", zap.String("kind", string(he.Kind)))
		return
	}
	select {
	case r.queue <- e:
	default:
		r.drop("heatmap", "queue_full", "bantay_events queue full; heatmap event dropped", zap.Int("queue_size", r.cfg.QueueSize))
	}
}

func (r *eventsReceiver) drop(source, reason, msg string, fields ...zap.Field) {
	r.droppedC.Add(context.Background(), 1, r.attrs,
		metric.WithAttributes(attribute.String("source", source), attribute.String("reason", reason)))
	r.warnings.Warn(source+"/"+reason, msg, fields...)
}

// run batches events from both sources: max_batch at once, or what is
// waiting every flush_interval. At stop it hands on what is left.
func (r *eventsReceiver) run() {
	defer close(r.done)
	ticker := time.NewTicker(r.cfg.FlushInterval)
	defer ticker.Stop()
	batch := make([]events.Event, 0, r.cfg.MaxBatch)
	add := func(e events.Event) {
		batch = append(batch, e)
		if len(batch) >= r.cfg.MaxBatch {
			batch = r.send(batch)
		}
	}
	busCh := r.busCh
	for {
		select {
		case e := <-r.queue:
			add(e)
		case e, ok := <-busCh:
			if !ok {
				busCh = nil // the bus was closed
				continue
			}
			add(e)
		case <-ticker.C:
			if len(batch) > 0 {
				batch = r.send(batch)
			}
		case <-r.stop:
		drain:
			for {
				select {
				case e := <-r.queue:
					add(e)
				case e, ok := <-busCh:
					if !ok {
						busCh = nil
						continue
					}
					add(e)
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				r.send(batch)
			}
			return
		}
	}
}

// send hands one batch to the logs pipeline. A refusal (the loki
// exporter's queue is full) is counted by obsreport
// (otelcol_receiver_refused_log_records, the whole batch) and logged at
// most once a minute; it is not retried: retrying is the exporter's job,
// and a retry loop here would hold back every event behind it. Nor is the
// batch split here to fit a queue's free room: the pipeline fans out (to
// the heatmap too), so a part sent again would reach the other exporters
// twice. The loki exporter queues what fits of a batch itself, and its
// error says how many events it dropped.
func (r *eventsReceiver) send(batch []events.Event) []events.Event {
	ctx := r.obsrep.StartLogsOp(context.Background())
	err := r.next.ConsumeLogs(ctx, events.ToLogs(batch))
	r.obsrep.EndLogsOp(ctx, format, len(batch), err)
	if err != nil {
		r.warnings.Warn("consume", "logs pipeline refused events of a batch", zap.Int("batch", len(batch)), zap.Error(err))
	}
	return batch[:0]
}

// Shutdown stops taking events, hands on what is queued (within ctx) and
// ends the bus subscription.
func (r *eventsReceiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown || !r.started {
		r.shutdown = true
		return nil
	}
	r.shutdown = true
	r.stopping.Store(true)
	if r.cancelBus != nil {
		// Closing the subscription keeps its buffered events readable; run
		// drains them before it returns.
		r.cancelBus()
	}
	close(r.stop)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
