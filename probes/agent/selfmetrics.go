package agent

import (
	"context"

	"github.com/prometheus/procfs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/queue"
)

// The probe's own metrics: how delivery to the collector goes and, with a
// queue, what is waiting on disk. They are observed from the exporter's
// state at every collection, so the same figures go to the collector with
// the measurements and to the probe's /metrics endpoint.
const (
	MetricQueueRequests  = "bantay.probe.queue.requests"
	MetricQueuePoints    = "bantay.probe.queue.points"
	MetricQueueSize      = "bantay.probe.queue.size"
	MetricQueueOldestAge = "bantay.probe.queue.oldest_age"
	MetricQueueDropped   = "bantay.probe.queue.dropped"
	MetricQueueReplayed  = "bantay.probe.queue.replayed"
	MetricExportLastOK   = "bantay.probe.export.last_success"
	MetricExportFailures = "bantay.probe.export.failures"
)

// registerSelfMetrics registers the probe's own metrics on an uplink's
// meter. Every point carries dst_city = the probe's own city: the
// collector's citytag places every point by its dst_city and refuses
// points without one, and these describe the probe where it stands.
func registerSelfMetrics(m metric.Meter, e *outageExporter, city string) error {
	here := metric.WithAttributes(attribute.String(metricmodel.AttrDstCity, city))
	lastOK, err := m.Float64ObservableGauge(MetricExportLastOK, metric.WithUnit("s"),
		metric.WithDescription("Unix time of the last export the collector stored (in full or in part); 0 before the first."))
	if err != nil {
		return err
	}
	failures, err := m.Int64ObservableCounter(MetricExportFailures, metric.WithUnit("{export}"),
		metric.WithDescription("Exports and replays not delivered in full, by cause: unreachable, refused, partial, queue_write."))
	if err != nil {
		return err
	}
	observed := []metric.Observable{lastOK, failures}
	var requests, points, size metric.Int64ObservableGauge
	var oldest metric.Float64ObservableGauge
	var dropped, replayed metric.Int64ObservableCounter
	if e.queue != nil {
		if requests, err = m.Int64ObservableGauge(MetricQueueRequests, metric.WithUnit("{request}"),
			metric.WithDescription("Export requests queued on disk, waiting for the collector.")); err != nil {
			return err
		}
		if points, err = m.Int64ObservableGauge(MetricQueuePoints, metric.WithUnit("{point}"),
			metric.WithDescription("Data points in the queued requests.")); err != nil {
			return err
		}
		if size, err = m.Int64ObservableGauge(MetricQueueSize, metric.WithUnit("By"),
			metric.WithDescription("Bytes of queued requests (the limit is queue.max_size).")); err != nil {
			return err
		}
		if oldest, err = m.Float64ObservableGauge(MetricQueueOldestAge, metric.WithUnit("s"),
			metric.WithDescription("Age of the oldest queued request; 0 when the queue is empty.")); err != nil {
			return err
		}
		if dropped, err = m.Int64ObservableCounter(MetricQueueDropped, metric.WithUnit("{request}"),
			metric.WithDescription("Queued requests dropped undelivered, by cause: size, age, refused.")); err != nil {
			return err
		}
		if replayed, err = m.Int64ObservableCounter(MetricQueueReplayed, metric.WithUnit("{request}"),
			metric.WithDescription("Queued requests delivered after an outage.")); err != nil {
			return err
		}
		observed = append(observed, requests, points, size, oldest, dropped, replayed)
	}
	withCause := func(c string) metric.ObserveOption {
		return metric.WithAttributes(attribute.String(metricmodel.AttrDstCity, city), attribute.String("cause", c))
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		e.mu.Lock()
		last, replays := e.lastSuccess, e.replayed
		fails := map[string]int64{causeUnreachable: 0, causeRefused: 0, causePartial: 0, causeQueueWrite: 0}
		for c, n := range e.failures {
			fails[c] = n
		}
		e.mu.Unlock()
		if last.IsZero() {
			o.ObserveFloat64(lastOK, 0, here)
		} else {
			o.ObserveFloat64(lastOK, float64(last.UnixNano())/1e9, here)
		}
		for c, n := range fails {
			o.ObserveInt64(failures, n, withCause(c))
		}
		if e.queue == nil {
			return nil
		}
		s := e.queue.Stats()
		o.ObserveInt64(requests, int64(s.Requests), here)
		o.ObserveInt64(points, s.Points, here)
		o.ObserveInt64(size, s.Bytes, here)
		age := 0.0
		if !s.Oldest.IsZero() {
			age = max(e.now().Sub(s.Oldest), 0).Seconds()
		}
		o.ObserveFloat64(oldest, age, here)
		for _, c := range queue.Causes {
			o.ObserveInt64(dropped, int64(s.Dropped[c]), withCause(string(c)))
		}
		o.ObserveInt64(replayed, replays, here)
		return nil
	}, observed...)
	return err
}

// registerProcessMetrics registers the probe process's CPU time and
// resident memory, read from /proc by procfs (as client_golang's process
// collector reads them) at every collection. Where /proc cannot be read
// (not Linux) nothing is observed: an absent series, not a false zero.
func registerProcessMetrics(m metric.Meter, city string) error {
	cpu, err := m.Float64ObservableCounter(metricmodel.ProcessCPU, metric.WithUnit(metricmodel.SecondsUnit),
		metric.WithDescription("CPU time (user and system) the probe process used since it started."))
	if err != nil {
		return err
	}
	mem, err := m.Int64ObservableGauge(metricmodel.ProcessMemory, metric.WithUnit(metricmodel.BytesUnit),
		metric.WithDescription("Resident memory of the probe process."))
	if err != nil {
		return err
	}
	here := metric.WithAttributes(attribute.String(metricmodel.AttrDstCity, city))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		p, err := procfs.Self()
		if err != nil {
			return nil
		}
		st, err := p.Stat()
		if err != nil {
			return nil
		}
		o.ObserveFloat64(cpu, st.CPUTime(), here)
		o.ObserveInt64(mem, int64(st.ResidentMemory()), here)
		return nil
	}, cpu, mem)
	return err
}
