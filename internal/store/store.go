// Package store is Bantay's embedded Prometheus: a TSDB with WAL and
// retention, OTLP ingestion through Prometheus's own OTLP translator, the
// PromQL engine, and the Prometheus HTTP API v1 over them. It is plain Go,
// wired into the collector by the `bantay` extension, so that it can be
// tested and benchmarked without a pipeline.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bantay-noc/bantay/internal/otlperror"
)

// Config configures the store.
type Config struct {
	// Dir holds the TSDB: WAL, head chunks and blocks.
	Dir string
	// Retention is how long samples are kept.
	Retention time.Duration
	// OutOfOrderWindow accepts samples this much older than a series' newest
	// one, so that late deliveries (a probe catching up after an outage, a
	// retried request) are stored instead of refused.
	OutOfOrderWindow time.Duration
	// MaxConcurrentAppends bounds appends in flight. Beyond it a request is
	// refused with a retryable error rather than queued in memory.
	MaxConcurrentAppends int
	// AppendWait is how long a request may wait for an append slot before it
	// is refused.
	AppendWait time.Duration
	// LookbackDelta, QueryTimeout and MaxSamples configure the PromQL engine
	// exactly as Prometheus's flags of the same names do.
	LookbackDelta time.Duration
	QueryTimeout  time.Duration
	MaxSamples    int
	// RetryAfter is the delay suggested to clients refused for overload.
	RetryAfter time.Duration
	// RemoteRead bounds the Prometheus remote-read endpoint (/api/v1/read).
	RemoteRead RemoteReadConfig
	// RecoveryInterval is how often a store whose WAL write failed checks
	// whether it can write again (free space) and, if so, reopens the TSDB.
	RecoveryInterval time.Duration
	// MaxExemplars is the size of the TSDB's in-memory exemplar ring, shared
	// by all series, like Prometheus's --storage.tsdb.max-exemplars; 0
	// turns exemplar storage off. Probes attach one to a slow or failed
	// sample (its trace id), and /api/v1/query_exemplars serves them.
	MaxExemplars int64
	// BlockDuration is the span of the head's blocks, Prometheus's hidden
	// --storage.tsdb.min-block-duration: the head is cut into a block once
	// it spans 1.5× this. Only a soak shortens it, to see compactions in
	// minutes instead of hours (docs/RELIABILITY.md, "Soak").
	BlockDuration time.Duration
}

// RemoteReadConfig bounds /api/v1/read like Prometheus's
// --storage.remote.read-* flags, with the same defaults.
type RemoteReadConfig struct {
	// SampleLimit is the most samples one sampled (non-streamed) read may
	// return; 0 means no limit.
	SampleLimit int
	// ConcurrencyLimit is how many reads run at once; more wait for a slot.
	ConcurrencyLimit int
	// MaxBytesInFrame bounds one frame of a streamed read.
	MaxBytesInFrame int
}

// DefaultConfig returns Prometheus's defaults where Prometheus has one.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:                  dir,
		Retention:            15 * 24 * time.Hour,
		OutOfOrderWindow:     30 * time.Minute,
		MaxConcurrentAppends: 4,
		AppendWait:           2 * time.Second,
		LookbackDelta:        5 * time.Minute,
		QueryTimeout:         2 * time.Minute,
		MaxSamples:           50_000_000,
		RetryAfter:           5 * time.Second,
		RemoteRead:           RemoteReadConfig{SampleLimit: 50_000_000, ConcurrencyLimit: 10, MaxBytesInFrame: 1 << 20},
		RecoveryInterval:     5 * time.Second,
		MaxExemplars:         100_000,
		BlockDuration:        time.Duration(tsdb.DefaultBlockDuration) * time.Millisecond,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("dir: must be set")
	case c.Retention < time.Hour:
		return fmt.Errorf("retention: %v is shorter than the 1h minimum", c.Retention)
	case c.OutOfOrderWindow < 0:
		return fmt.Errorf("out_of_order_window: must not be negative, got %v", c.OutOfOrderWindow)
	case c.MaxConcurrentAppends < 1:
		return fmt.Errorf("max_concurrent_appends: must be at least 1, got %d", c.MaxConcurrentAppends)
	case c.AppendWait < 0:
		return fmt.Errorf("append_wait: must not be negative, got %v", c.AppendWait)
	case c.LookbackDelta <= 0:
		return fmt.Errorf("lookback_delta: must be positive, got %v", c.LookbackDelta)
	case c.QueryTimeout <= 0:
		return fmt.Errorf("query_timeout: must be positive, got %v", c.QueryTimeout)
	case c.MaxSamples <= 0:
		return fmt.Errorf("max_samples: must be positive, got %d", c.MaxSamples)
	case c.RemoteRead.SampleLimit < 0:
		return fmt.Errorf("remote_read.sample_limit: must not be negative (0 means no limit), got %d", c.RemoteRead.SampleLimit)
	case c.RemoteRead.ConcurrencyLimit < 1:
		// Prometheus's read handler builds a gate of this capacity: 0 would
		// make every read wait forever.
		return fmt.Errorf("remote_read.concurrency_limit: must be at least 1, got %d", c.RemoteRead.ConcurrencyLimit)
	case c.RemoteRead.MaxBytesInFrame < 1:
		return fmt.Errorf("remote_read.max_bytes_in_frame: must be positive, got %d", c.RemoteRead.MaxBytesInFrame)
	case c.RecoveryInterval <= 0:
		return fmt.Errorf("recovery_interval: must be positive, got %v", c.RecoveryInterval)
	case c.MaxExemplars < 0:
		return fmt.Errorf("max_exemplars: must not be negative (0 turns exemplar storage off), got %d", c.MaxExemplars)
	case c.BlockDuration < time.Minute || c.BlockDuration%time.Minute != 0:
		// The TSDB cuts blocks at multiples of the range in milliseconds;
		// whole minutes keep block boundaries readable.
		return fmt.Errorf("block_duration: want whole minutes, at least 1m, got %v", c.BlockDuration)
	}
	return nil
}

// Store is the embedded TSDB with its query engine.
type Store struct {
	cfg     Config
	logger  *slog.Logger
	db      *DB
	opts    *tsdb.Options
	tsdbReg *reopenRegisterer
	engine  *promql.Engine
	parser  parser.Parser
	slots   chan struct{}
	started time.Time

	// commitMu orders commits: once one fails, none after it is
	// acknowledged until a reopen has repaired the WAL (see gate).
	commitMu sync.Mutex
	writable atomic.Bool
	stop     chan struct{}
	recovery sync.WaitGroup

	converters sync.Pool
	metadata   metadataIndex
	settings   otlptranslator.Settings
	series     *seriesCache
	backfill   atomic.Pointer[remoteBackfill] // the Server's, which takes late samples

	appendedSamples prometheus.Counter
	rejectedSamples *prometheus.CounterVec
	refusedRequests *prometheus.CounterVec
	warnings        *prometheus.CounterVec
	writableGauge   prometheus.Gauge
	commitFailures  *prometheus.CounterVec
	commitDuration  prometheus.Histogram
	reopens         *prometheus.CounterVec
	appendPaths     *prometheus.CounterVec
}

// Open opens (or creates) the TSDB in cfg.Dir, replaying its WAL, and
// registers the TSDB's, the engine's and the store's own metrics with reg.
func Open(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	opts.OutOfOrderTimeWindow = cfg.OutOfOrderWindow.Milliseconds()
	opts.MinBlockDuration = cfg.BlockDuration.Milliseconds()
	// tsdb.DefaultOptions keeps every 2 h block as the head cut it, so a
	// 7-day query opened and merged 84 blocks; compact like Prometheus.
	opts.MaxBlockDuration = maxBlockDuration(cfg.Retention).Milliseconds()
	// A clean shutdown writes the head's chunks out, and the next start
	// loads them instead of replaying the whole WAL (only what follows the
	// snapshot). Out-of-order samples are not in the snapshot but in the WBL,
	// which is replayed in full either way (docs/RELIABILITY.md).
	opts.EnableMemorySnapshotOnShutdown = true
	// Exemplars (a slow or failed probe's trace id) are kept in memory only,
	// as in Prometheus: the WAL holds them for a restart, blocks do not.
	// Native histograms (the probes' exponential histograms) need no
	// option: the TSDB of Prometheus 3 always stores them.
	opts.EnableExemplarStorage = cfg.MaxExemplars > 0
	opts.MaxExemplars = cfg.MaxExemplars
	tsdbReg := &reopenRegisterer{Registerer: reg}
	db, dbStats, err := openTSDB(cfg.Dir, opts, tsdbReg, logger)
	if err != nil {
		return nil, err
	}
	p := parser.NewParser(parser.Options{})
	s := &Store{
		cfg:     cfg,
		logger:  logger,
		opts:    opts,
		tsdbReg: tsdbReg,
		parser:  p,
		slots:   make(chan struct{}, cfg.MaxConcurrentAppends),
		started: time.Now(),
		stop:    make(chan struct{}),
		engine: promql.NewEngine(promql.EngineOpts{
			Logger:               logger.With("component", "query engine"),
			Reg:                  reg,
			MaxSamples:           cfg.MaxSamples,
			Timeout:              cfg.QueryTimeout,
			LookbackDelta:        cfg.LookbackDelta,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
			Parser:               p,
		}),
		settings: translatorSettings(config.DefaultOTLPConfig, cfg.LookbackDelta),
		appendedSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bantay_store_appended_samples_total",
			Help: "Samples committed to the TSDB WAL from OTLP requests.",
		}),
		rejectedSamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_store_rejected_samples_total",
			Help: "Samples the TSDB refused (out of order beyond the window, too old, conflicting duplicate), by reason.",
		}, []string{"reason"}),
		refusedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_store_rejected_requests_total",
			Help: "OTLP requests refused as a whole, by reason (overload is retryable; invalid is not).",
		}, []string{"reason"}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_store_translation_warnings_total",
			Help: "Warnings from Prometheus's OTLP translator, by category.",
		}, []string{"category"}),
		writableGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bantay_store_writable",
			Help: "1 while the store can commit to its WAL; 0 after a failed write until a reopen has repaired the WAL (appends are refused, retryably, meanwhile).",
		}),
		commitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_store_commit_failures_total",
			Help: "Commits to the TSDB WAL that failed, by cause (no_space: the disk is full; io: any other write error).",
		}, []string{"cause"}),
		// A slow disk shows here first: refusals (overloaded) follow only
		// once slow commits have held every append slot for append_wait.
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bantay_store_commit_duration_seconds",
			Help:    "Time of each commit to the TSDB WAL (the write the acknowledgement waits for), not counting the wait for the commit before it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		reopens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_store_reopens_total",
			Help: "Reopens of the TSDB (WAL repair) after a failed write, by result.",
		}, []string{"result"}),
		appendPaths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_store_append_requests_total",
			Help: "OTLP requests by append path: cached (every stream known, appended by series reference) or translated (by Prometheus's OTLP translator).",
		}, []string{"path"}),
	}
	s.db = &DB{db: db, stats: dbStats, store: s}
	s.writable.Store(true)
	s.writableGauge.Set(1)
	// Every cause and result exists from the start, so rate() and
	// increase() in alerts see the first failure.
	for _, cause := range []string{causeNoSpace, causeIO} {
		s.commitFailures.WithLabelValues(cause)
	}
	for _, result := range []string{"success", "failure"} {
		s.reopens.WithLabelValues(result)
	}
	for _, path := range []string{pathCached, pathTranslated} {
		s.appendPaths.WithLabelValues(path)
	}
	s.converters.New = func() any { return otlptranslator.NewPrometheusConverter(nil) }
	s.series = newSeriesCache(s.settings, &s.converters)
	cachedStreams := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bantay_store_series_cache_streams",
		Help: "OTLP streams (resource, scope, metric and point attributes) whose series labels and references the store has cached.",
	}, func() float64 { return float64(s.series.entries()) })
	for _, c := range []prometheus.Collector{s.appendedSamples, s.rejectedSamples, s.refusedRequests, s.warnings,
		s.writableGauge, s.commitFailures, s.commitDuration, s.reopens, s.appendPaths, cachedStreams} {
		if err := reg.Register(c); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return s, nil
}

// translatorSettings maps Prometheus's OTLP configuration onto the
// translator's settings the same way Prometheus's own OTLP endpoint does, so
// that names and labels come out exactly as a Prometheus server would store
// them (by default: UnderscoreEscapingWithSuffixes, no resource attributes
// promoted beyond job and instance).
func translatorSettings(otlp config.OTLPConfig, lookback time.Duration) otlptranslator.Settings {
	return otlptranslator.Settings{
		AddMetricSuffixes:                    otlp.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !otlp.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            otlptranslator.NewPromoteResourceAttributes(otlp),
		KeepIdentifyingResourceAttributes:    otlp.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              otlp.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 otlp.PromoteScopeMetadata,
		LookbackDelta:                        lookback,
		LabelNameUnderscoreSanitization:      otlp.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: otlp.LabelNamePreserveMultipleUnderscores,
	}
}

// Close stops a recovery in progress, then flushes and closes the TSDB.
func (s *Store) Close() error {
	close(s.stop)
	s.recovery.Wait()
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return s.db.db.Close()
}

// DB is the TSDB for components that need its native interfaces
// (storage.Queryable, storage.Appendable, …). It stays valid across the
// reopen that follows a failed write.
func (s *Store) DB() *DB { return s.db }

// Writable reports whether the store can commit to its WAL. It is false
// from a failed write until a reopen has repaired the WAL; readiness
// follows it.
func (s *Store) Writable() bool { return s.writable.Load() }

// Engine is the PromQL engine over the store.
func (s *Store) Engine() *promql.Engine { return s.engine }

// Parser is the PromQL parser the engine uses.
func (s *Store) Parser() parser.Parser { return s.parser }

// LookbackDelta is the engine's lookback delta.
func (s *Store) LookbackDelta() time.Duration { return s.cfg.LookbackDelta }

// The append paths bantay_store_append_requests_total counts.
const (
	pathCached     = "cached"
	pathTranslated = "translated"
)

// ErrOverloaded is wrapped by refusals for overload. The error returned
// carries gRPC status RESOURCE_EXHAUSTED with a RetryInfo, which the OTLP
// receiver turns into a retryable answer (gRPC RESOURCE_EXHAUSTED, HTTP 429
// with Retry-After): the client keeps the data and sends it again.
var ErrOverloaded = errors.New("store overloaded")

// AppendMetrics converts md with Prometheus's OTLP translator, or appends
// it by reference when every stream in it is cached (seriescache.go), and
// commits it to the TSDB. It returns only after the samples are in the WAL: a nil error
// means stored. Samples the TSDB refuses one by one (out of order beyond the
// window, conflicting duplicates) do not stop the rest of the request; they
// are counted and reported in a permanent error after the others commit.
func (s *Store) AppendMetrics(ctx context.Context, md pmetric.Metrics) error {
	if !s.writable.Load() {
		s.refusedRequests.WithLabelValues("unwritable").Inc()
		return s.retryable(codes.Unavailable, errUnwritable.Error())
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-s.slots }()

	gated := s.db.appenderV2(ctx)
	app := &tolerantAppender{AppenderV2: gated, metadata: &s.metadata, late: s.backfill.Load().newBatch()}
	var (
		annots  annotations.Annotations
		convErr error
		rec     *recorder // the translator's appends, to learn the streams from
	)
	if req, ok := s.series.lookup(md, gated.gen); ok {
		s.appendPaths.WithLabelValues(pathCached).Inc()
		convErr = s.series.appendCached(ctx, app, md, req)
	} else {
		s.appendPaths.WithLabelValues(pathTranslated).Inc()
		rec = getRecorder(app)
		defer putRecorder(rec)
		conv := s.converters.Get().(*otlptranslator.PrometheusConverter)
		conv.Reset(rec)
		annots, convErr = conv.FromMetrics(ctx, md, s.settings)
		conv.Reset(nil)
		s.converters.Put(conv)
	}

	for category, n := range otlptranslator.CountWarningsByCategory(annots) {
		s.warnings.WithLabelValues(string(category)).Add(float64(n))
	}
	if ctx.Err() != nil {
		_ = app.Rollback()
		return status.Error(codes.Unavailable, "request cancelled before commit: "+ctx.Err().Error())
	}
	if err := app.Commit(); err != nil {
		s.refusedRequests.WithLabelValues("commit_failed").Inc()
		return s.retryable(codes.Unavailable, "commit to TSDB: "+err.Error())
	}
	app.late.committed()
	if rec != nil && convErr == nil && len(annots) == 0 {
		s.series.learn(ctx, md, rec.recs, gated.gen)
	}
	s.appendedSamples.Add(float64(app.appended))
	for reason, n := range app.rejected {
		s.rejectedSamples.WithLabelValues(reason).Add(float64(n))
	}
	var problems []string
	if convErr != nil {
		s.refusedRequests.WithLabelValues("invalid").Inc()
		problems = append(problems, convErr.Error())
	}
	if app.firstErr != nil {
		problems = append(problems, fmt.Sprintf("%d samples refused by the TSDB, first: %v", app.rejectedTotal(), app.firstErr))
	}
	if len(problems) > 0 {
		return otlperror.Permanent(codes.InvalidArgument, fmt.Sprintf("stored %d samples; not stored: %v", app.appended, problems))
	}
	return nil
}

func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.cfg.AppendWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	s.refusedRequests.WithLabelValues("overloaded").Inc()
	return fmt.Errorf("%w: %w", ErrOverloaded,
		s.retryable(codes.ResourceExhausted, ErrOverloaded.Error()+": all append slots busy, retry later"))
}

// retryable is a gRPC status the OTLP receiver answers as retryable, with a
// RetryInfo it turns into HTTP Retry-After (429 for RESOURCE_EXHAUSTED, 503
// for UNAVAILABLE): the client keeps the data and sends it again.
func (s *Store) retryable(code codes.Code, msg string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(s.cfg.RetryAfter)})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// tolerantAppender stores what it can: a sample the TSDB refuses is counted
// and skipped instead of aborting the conversion of everything after it.
type tolerantAppender struct {
	storage.AppenderV2
	metadata   *metadataIndex
	late       *lateBatch
	lastFamily string
	appended   int
	rejected   map[string]int
	firstErr   error
}

func (a *tolerantAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err == nil || isPartial(err) { // partial: the sample is written, an exemplar is not
		a.appended++
		a.late.observe(ls, t)
		if opts.MetricFamilyName != a.lastFamily {
			a.lastFamily = opts.MetricFamilyName
			a.metadata.observe(opts.MetricFamilyName, opts.Metadata)
		}
		return r, nil
	}
	reason := sampleErrorReason(err)
	if reason == "" {
		return r, err
	}
	if a.rejected == nil {
		a.rejected = make(map[string]int)
	}
	a.rejected[reason]++
	if a.firstErr == nil {
		a.firstErr = fmt.Errorf("series %s: %w", ls.String(), err)
	}
	return r, nil
}

// isPartial is in a function of its own because errors.As moves its target
// to the heap: declared in Append, that cost one allocation per sample.
func isPartial(err error) bool {
	var partial *storage.AppendPartialError
	return errors.As(err, &partial)
}

func (a *tolerantAppender) rejectedTotal() int {
	n := 0
	for _, c := range a.rejected {
		n += c
	}
	return n
}

// sampleErrorReason names per-sample refusals; "" means the error is not about one sample.
func sampleErrorReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return "out_of_order"
	case errors.Is(err, storage.ErrTooOldSample), errors.Is(err, storage.ErrOutOfBounds):
		return "too_old"
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return "duplicate_conflict"
	default:
		return ""
	}
}

// maxBlockDuration is the largest block the TSDB compacts to: a tenth of
// the retention, at most 31 days, as Prometheus sets it (cmd/prometheus);
// the TSDB raises anything below its 2 h minimum to it.
func maxBlockDuration(retention time.Duration) time.Duration {
	return max(min(retention/10, 31*24*time.Hour), 2*time.Hour)
}
