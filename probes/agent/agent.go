// Package agent is bantay-probe's scheduler and meter: it runs every target
// on every uplink on its own jittered schedule and records the results with
// the OpenTelemetry SDK, one MeterProvider (and so one OTel resource and one
// OTLP exporter) per uplink, as docs/metric-model.md specifies.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/prober"
	"github.com/bantay-noc/bantay/probes/queue"
	"github.com/bantay-noc/bantay/probes/reflector"
)

// Agent runs a probe configuration.
type Agent struct {
	cfg    *config.Config
	logger *slog.Logger
	uplink []*uplink
	// metrics serves the probe's own metrics (nil when metrics.listen is
	// empty); registry is what it serves.
	metrics  *http.Server
	listener net.Listener
	registry *prometheus.Registry
	// mesh takes targets from the collector (nil without mesh mode), and
	// reflector answers other sites (nil without reflector.listen).
	mesh      *mesh
	reflector *reflector.Reflector
	// memory is the soft memory limit kept for the process (LimitMemory).
	memory memoryLimit

	runOnce sync.Once
}

// uplink is one MeterProvider with its instruments and jobs.
type uplink struct {
	name     string
	logger   *slog.Logger
	opts     prober.Options
	provider *sdkmetric.MeterProvider
	exporter *outageExporter
	inst     *instruments
	// jobs are the file's targets'; mesh targets' jobs are the mesh's.
	jobs []*job
}

// New builds an agent: the probers, one exporter and MeterProvider per
// uplink. Nothing is measured or sent until Run. cfg is validated first (as
// config.Load does, filling defaults), so a Config built in code works too.
func New(cfg *config.Config, logger *slog.Logger) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Every line names the probe, so logs shipped from many edge boxes to one
	// place can be told apart.
	a := &Agent{cfg: cfg, logger: logger.With("probe", cfg.Probe.ID)}
	if cfg.Metrics.Listen != "" {
		l, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return nil, fmt.Errorf("metrics.listen: %w", err)
		}
		a.listener, a.registry = l, prometheus.NewRegistry()
		a.metrics = &http.Server{
			Handler:           promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}),
			ReadHeaderTimeout: 10 * time.Second,
		}
	}
	if cfg.Mesh.Enabled {
		var err error
		if a.mesh, err = newMesh(a); err != nil {
			a.discard()
			return nil, fmt.Errorf("mesh: %w", err)
		}
	}
	if cfg.Reflector.Listen != "" {
		var err error
		if a.reflector, err = reflector.Listen(cfg.Reflector.Listen, a.logger.With("reflector", cfg.Reflector.Listen)); err != nil {
			a.discard()
			return nil, fmt.Errorf("reflector.listen: %w", err)
		}
	}
	for _, u := range cfg.Uplinks {
		up, err := a.newUplink(u)
		if err != nil {
			a.discard()
			return nil, fmt.Errorf("uplink %q: %w", u.Name, err)
		}
		a.uplink = append(a.uplink, up)
	}
	return a, nil
}

func (a *Agent) newUplink(u config.Uplink) (*uplink, error) {
	logger := a.logger.With("uplink", u.Name)
	// Probers first: they can fail without leaving anything to clean up.
	opts := prober.Options{ProbeID: a.cfg.Probe.ID}
	if u.BindAddress != "" {
		var err error
		if opts.BindAddress, err = netip.ParseAddr(u.BindAddress); err != nil {
			return nil, fmt.Errorf("bind_address: %w", err)
		}
	}
	up := &uplink{name: u.Name, logger: logger, opts: opts}
	probers := make([]prober.Prober, len(a.cfg.Targets))
	for i, t := range a.cfg.Targets {
		p, err := up.newProber(t)
		if err != nil {
			return nil, err
		}
		probers[i] = p
	}

	exp, err := newExporter(context.Background(), a.cfg.Collector, a.cfg.Probe.ID)
	if err != nil {
		return nil, fmt.Errorf("create OTLP exporter: %w", err)
	}
	wrapped := &outageExporter{Exporter: exp, logger: logger, now: time.Now}
	if q := a.cfg.Queue; q.Dir != "" {
		// One file per uplink: each is its own stream of requests, and a
		// bbolt file is locked by one writer.
		wrapped.queuePath = filepath.Join(q.Dir, u.Name+".db")
		wrapped.replayPerExport = q.ReplayPerExport
		if wrapped.queue, err = queue.Open(wrapped.queuePath, queue.Options{MaxBytes: int64(q.MaxSize), MaxAge: q.MaxAge}); err != nil {
			exp.Shutdown(canceled())
			return nil, fmt.Errorf("queue.dir: %w", err)
		}
	}
	res := resource.NewSchemaless(
		attribute.String(metricmodel.ResourceServiceName, metricmodel.ServiceName),
		attribute.String(metricmodel.ResourceProbeID, a.cfg.Probe.ID),
		attribute.String("deployment.environment.name", a.cfg.Probe.Environment),
		attribute.String(metricmodel.ResourceDeclaredCity, a.cfg.Probe.City),
		attribute.String(metricmodel.ResourceCarrier, u.Carrier),
		attribute.String(metricmodel.ResourceNetworkType, u.NetworkType),
	)
	var export sdkmetric.Exporter = wrapped
	if a.mesh != nil {
		export = liveExporter{Exporter: wrapped, live: &a.mesh.live}
	}
	mpOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(export,
			sdkmetric.WithInterval(a.cfg.Collector.ExportInterval),
			sdkmetric.WithTimeout(a.cfg.Collector.Timeout))),
	}
	mpOpts = append(mpOpts, recordingOptions(a.cfg.Recording)...)
	if a.registry != nil {
		// A second reader on the same provider: /metrics shows exactly
		// what is sent. The uplink's carrier and network type become
		// labels, so the uplinks' series stay apart in one registry.
		prom, err := otelprom.New(otelprom.WithRegisterer(a.registry),
			otelprom.WithResourceAsConstantLabels(attribute.NewAllowKeysFilter(metricmodel.ResourceCarrier, metricmodel.ResourceNetworkType)))
		if err != nil {
			wrapped.close()
			exp.Shutdown(canceled())
			return nil, fmt.Errorf("metrics: %w", err)
		}
		mpOpts = append(mpOpts, sdkmetric.WithReader(prom))
	}
	up.provider, up.exporter = sdkmetric.NewMeterProvider(mpOpts...), wrapped
	meter := up.provider.Meter(metricmodel.ScopeName)
	inst, err := newInstruments(meter, a.cfg.Probe.City)
	if err == nil {
		err = registerSelfMetrics(meter, wrapped, a.cfg.Probe.City)
	}
	if err == nil && len(a.uplink) == 0 {
		// The process is one for all uplinks: its CPU and memory go on
		// the first uplink only, so a sum over uplinks is not a multiple.
		// So does the mesh's refresh, which is the probe's.
		err = registerProcessMetrics(meter, a.cfg.Probe.City)
		if err == nil && a.mesh != nil {
			err = registerMeshMetrics(meter, a.mesh, a.cfg.Probe.City)
		}
	}
	if err != nil {
		up.discard()
		return nil, err
	}
	up.inst = inst
	for i, t := range a.cfg.Targets {
		j := newJob(t, probers[i], inst, logger.With("target", t.Name))
		j.slow = a.cfg.Recording.Slow
		up.jobs = append(up.jobs, j)
	}
	return up, nil
}

// newProber makes t's prober for this uplink. An icmp target's socket is
// reported once, when the target is set up: the probes of a target this
// host may not ping fail (reason other) and the other targets go on.
func (u *uplink) newProber(t config.Target) (prober.Prober, error) {
	p, err := prober.New(t, u.opts)
	if err != nil {
		return nil, err
	}
	if ic, ok := p.(*prober.ICMP); ok {
		if err := ic.StartError(); err != nil {
			u.logger.Error("icmp target cannot be probed until this is fixed", "target", t.Name, "error", err)
		} else {
			u.logger.Info("icmp target", "target", t.Name, "socket", ic.Mode(), "kernel_timestamps", ic.KernelTimestamps())
		}
	}
	return p, nil
}

// discard releases what a New that failed built so far, without exporting
// (nothing was measured) and without logging an outage.
func (a *Agent) discard() {
	for _, u := range a.uplink {
		u.discard()
	}
	if a.listener != nil {
		a.listener.Close()
	}
	if a.reflector != nil {
		a.reflector.Close()
	}
}

func (u *uplink) discard() {
	u.exporter.silent.Store(true)
	u.provider.Shutdown(canceled())
	u.exporter.close()
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// instruments are the metrics of the model, on one uplink's meter.
type instruments struct {
	latency  metric.Float64Histogram
	attempts metric.Int64Counter
	failures metric.Int64Counter
	// Per round: duplicates and reordered replies, and jitter as a sum
	// of absolute differences of consecutive RTTs and the number of those
	// pairs, so that any window's mean jitter is one division of two
	// rates (and adds up over probes and uplinks, which a gauge cannot).
	duplicates  metric.Int64Counter
	reordered   metric.Int64Counter
	jitter      metric.Float64Counter
	jitterPairs metric.Int64Counter
	// http only: the last answer's status, and the earliest certificate
	// expiry of an https answer.
	statusCode metric.Int64Gauge
	certExpiry metric.Float64Gauge
	// The probe's own health, per uplink: how late runs start and how
	// many rounds are being taken.
	lateness metric.Float64Histogram
	inFlight metric.Int64UpDownCounter
	// here is the attribute set of the probe's own metrics: dst_city =
	// the probe's city (registerSelfMetrics says why).
	here metric.MeasurementOption
}

func newInstruments(m metric.Meter, city string) (*instruments, error) {
	in := instruments{here: metric.WithAttributeSet(attribute.NewSet(attribute.String(metricmodel.AttrDstCity, city)))}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	in.latency, err = m.Float64Histogram(metricmodel.Latency,
		metric.WithUnit(metricmodel.LatencyUnit),
		metric.WithDescription("Latency of answered probes, from the monotonic clock; for http also each phase (attribute phase)."),
		metric.WithExplicitBucketBoundaries(metricmodel.LatencyBounds...))
	add(err)
	in.attempts, err = m.Int64Counter(metricmodel.Attempts,
		metric.WithUnit(metricmodel.AttemptsUnit),
		metric.WithDescription("Probes sent, answered or not."))
	add(err)
	in.failures, err = m.Int64Counter(metricmodel.Failures,
		metric.WithUnit(metricmodel.FailuresUnit),
		metric.WithDescription("Probes not answered in time, by reason."))
	add(err)
	in.duplicates, err = m.Int64Counter(metricmodel.Duplicates,
		metric.WithUnit(metricmodel.ReplyUnit),
		metric.WithDescription("Replies to a probe already answered (icmp, udp)."))
	add(err)
	in.reordered, err = m.Int64Counter(metricmodel.Reordered,
		metric.WithUnit(metricmodel.ReplyUnit),
		metric.WithDescription("Replies that arrived after the reply to a later probe of their round (icmp, udp)."))
	add(err)
	in.jitter, err = m.Float64Counter(metricmodel.Jitter,
		metric.WithUnit(metricmodel.JitterUnit),
		metric.WithDescription("Sum of the absolute differences between the RTTs of consecutive answered probes of a round; divide by bantay.probe.jitter.pairs."))
	add(err)
	in.jitterPairs, err = m.Int64Counter(metricmodel.JitterPairs,
		metric.WithUnit(metricmodel.PairUnit),
		metric.WithDescription("Pairs of consecutive answered probes of a round summed in bantay.probe.jitter."))
	add(err)
	in.statusCode, err = m.Int64Gauge(metricmodel.HTTPStatus,
		metric.WithDescription("HTTP status of the last answer (also when it was not the expected one)."))
	add(err)
	in.certExpiry, err = m.Float64Gauge(metricmodel.CertExpiry,
		metric.WithUnit(metricmodel.SecondsUnit),
		metric.WithDescription("Unix time of the earliest NotAfter in the certificate chain of the last https answer."))
	add(err)
	in.lateness, err = m.Float64Histogram(metricmodel.Lateness,
		metric.WithUnit(metricmodel.SecondsUnit),
		metric.WithDescription("How much later than scheduled each run started."),
		metric.WithExplicitBucketBoundaries(metricmodel.LatenessBounds...))
	add(err)
	in.inFlight, err = m.Int64UpDownCounter(metricmodel.RoundsInFlight,
		metric.WithUnit(metricmodel.RoundUnit),
		metric.WithDescription("Rounds being taken now."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	in.inFlight.Add(context.Background(), 0, in.here)
	return &in, nil
}

// Run measures until ctx is cancelled, then stops the schedules, makes a
// final export and returns. The error is non-nil when that final export
// could not be delivered (the measurements since the last delivery are
// lost) or when Run is called a second time.
func (a *Agent) Run(ctx context.Context) error {
	first := false
	a.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("agent: Run called twice")
	}
	jobs := 0
	for _, u := range a.uplink {
		jobs += len(u.jobs)
	}
	a.raiseMemoryLimit(nil, 0)
	a.logger.Info("probe running", "city", a.cfg.Probe.City,
		"uplinks", len(a.uplink), "targets", len(a.cfg.Targets), "schedules", jobs,
		"collector", a.cfg.Collector.Endpoint, "protocol", a.cfg.Collector.Protocol,
		"queue", a.cfg.Queue.Dir, "metrics", a.cfg.Metrics.Listen, "mesh", a.cfg.Mesh.Collector,
		"memory_limit", memoryLimitText())
	for _, u := range a.uplink {
		if q := u.exporter.queue; q != nil {
			if s := q.Stats(); s.Requests > 0 {
				u.exporter.logger.Info(fmt.Sprintf("%d requests (%d points) queued on disk by an earlier run; they are sent oldest first once the collector answers", s.Requests, s.Points),
					"queue", u.exporter.queuePath, "queued_requests", s.Requests, "queued_points", s.Points, "oldest", s.Oldest)
			}
		}
	}
	served := make(chan struct{})
	if a.metrics != nil {
		go func() {
			defer close(served)
			if err := a.metrics.Serve(a.listener); !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("metrics endpoint failed", "error", err)
			}
		}()
	} else {
		close(served)
	}

	var wg sync.WaitGroup
	for _, u := range a.uplink {
		for _, j := range u.jobs {
			wg.Go(func() { j.run(ctx, newRand()) })
		}
	}
	if a.mesh != nil {
		wg.Go(func() { a.mesh.run(ctx) })
	}
	if a.reflector != nil {
		a.logger.Info("reflector listening", "address", a.reflector.Addr().String())
		wg.Go(func() {
			if err := a.reflector.Serve(ctx); err != nil {
				a.logger.Error("reflector stopped", "error", err)
			}
		})
	}
	<-ctx.Done()
	wg.Wait()

	// A fresh context: the caller's is already cancelled, and the last
	// measurements deserve one bounded attempt to reach the collector.
	flushCtx, cancel := context.WithTimeout(context.Background(), a.cfg.Collector.Timeout+time.Second)
	defer cancel()
	err := a.shutdownProviders(flushCtx)
	if a.metrics != nil {
		a.metrics.Close()
	}
	<-served
	a.logger.Info("probe stopped")
	return err
}

// shutdownProviders exports once more (Shutdown flushes) and closes every
// uplink's provider and queue, reporting uplinks whose data could not be
// delivered nor queued, and saying what stays queued for the next start.
// The uplinks shut down at once: each final export may wait up to the
// collector timeout for an unreachable collector, and in turn the later
// uplinks ran out of ctx before their final export was queued.
func (a *Agent) shutdownProviders(ctx context.Context) error {
	errs := make([]error, len(a.uplink))
	var wg sync.WaitGroup
	for i, u := range a.uplink {
		wg.Go(func() { errs[i] = u.shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// shutdown is shutdownProviders for one uplink.
func (u *uplink) shutdown(ctx context.Context) error {
	var errs []error
	if err := u.provider.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("uplink %q: shut down meter: %w", u.name, err))
	}
	if err := u.exporter.undelivered(); err != nil {
		errs = append(errs, fmt.Errorf("uplink %q: final export not delivered: %w", u.name, err))
	}
	if q := u.exporter.queue; q != nil {
		if s := q.Stats(); s.Requests > 0 {
			u.exporter.logger.Info(fmt.Sprintf("%d requests (%d points) stay queued on disk; they are sent on next start", s.Requests, s.Points),
				"queue", u.exporter.queuePath, "queued_requests", s.Requests, "queued_points", s.Points, "queued_bytes", s.Bytes, "oldest", s.Oldest)
		}
	}
	if err := u.exporter.close(); err != nil {
		errs = append(errs, fmt.Errorf("uplink %q: close queue: %w", u.name, err))
	}
	return errors.Join(errs...)
}
