package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/file" // file_sd_configs, for Alertmanagers and scrape targets that change without a reload
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/logging"
)

// Server runs, around the store, the parts of a Prometheus server that a
// standard prometheus.yml configures: rule evaluation (rule_files, global
// evaluation_interval), alert notification (alerting.alertmanagers), remote
// write out of the TSDB's WAL (remote_write), and scraping (scrape_configs,
// used to store the collector's own telemetry). The code is Prometheus's
// own managers, wired as cmd/prometheus wires them, so an operator
// configures Bantay like any Prometheus and reloads it the same way.
type Server struct {
	store       *Store
	file        string
	externalURL *url.URL
	logger      *slog.Logger

	mu  sync.RWMutex
	cfg *config.Config

	ctx            context.Context
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	discoverScrape *discovery.Manager
	discoverNotify *discovery.Manager
	scrape         *scrape.Manager
	notifier       *notifier.Manager
	rules          *rules.Manager
	remote         *remote.Storage
	backfill       *remoteBackfill

	reloads *prometheus.CounterVec
	lastOK  prometheus.Gauge
}

// NewServer loads configFile (Prometheus's configuration format; an empty
// name means an empty configuration: no rules, no Alertmanager, no remote
// write) and starts every manager. A bad file is an error naming the file.
func NewServer(s *Store, configFile string, externalURL *url.URL, reg prometheus.Registerer, logger *slog.Logger) (*Server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Server{
		store: s, file: configFile, externalURL: externalURL, logger: logger, ctx: ctx, cancel: cancel,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bantay_config_reloads_total",
			Help: "Reloads of the Prometheus-format configuration (rules, alerting, remote write, scrape), by result.",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prometheus_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
	}
	for _, c := range []prometheus.Collector{p.reloads, p.lastOK} {
		if err := reg.Register(c); err != nil {
			cancel()
			return nil, err
		}
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("service discovery metrics: %w", err)
	}
	p.discoverScrape = discovery.NewManager(ctx, logger.With("component", "discovery manager scrape"), reg, sdMetrics, discovery.Name("scrape"))
	p.discoverNotify = discovery.NewManager(ctx, logger.With("component", "discovery manager notify"), reg, sdMetrics, discovery.Name("notify"))
	if p.discoverScrape == nil || p.discoverNotify == nil {
		cancel()
		return nil, errors.New("create service discovery managers")
	}
	if p.scrape, err = scrape.NewManager(&scrape.Options{}, logger.With("component", "scrape manager"),
		logging.NewJSONFileLogger, nil, s.db, reg); err != nil {
		cancel()
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	p.notifier = notifier.NewManager(&notifier.Options{QueueCapacity: 10000, Registerer: reg, DrainOnShutdown: true},
		model.UTF8Validation, logger.With("component", "notifier"))
	p.rules = rules.NewManager(&rules.ManagerOptions{
		AppendableV2:    s.db,
		Queryable:       s.db,
		QueryFunc:       rules.EngineQueryFunc(s.engine, s.db),
		NotifyFunc:      rules.SendAlerts(p.notifier, externalURL.String()),
		Context:         ctx,
		ExternalURL:     externalURL,
		Registerer:      reg,
		Logger:          logger.With("component", "rule manager"),
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     time.Minute,
		Parser:          s.parser,
	})
	// Remote write tails the TSDB's WAL, like Prometheus's: ingestion never
	// waits for the remote store. Like Prometheus's, after a restart it sends
	// only samples newer than the start; the backfill sends the rest
	// (backfill.go, docs/SCALING.md).
	p.remote = remote.NewStorage(logger.With("component", "remote"), reg, func() (int64, error) { return s.db.StartTime() },
		s.cfg.Dir, time.Minute, nil, false)
	if p.backfill, err = newRemoteBackfill(s.db, s.cfg.Dir, p.remote.LowestSentTimestamp, reg, logger.With("component", "remote backfill")); err != nil {
		cancel()
		return nil, fmt.Errorf("remote-write backfill: %w", err)
	}

	if err := p.Reload(); err != nil {
		p.Stop()
		return nil, err
	}
	p.wg.Go(func() { _ = p.discoverScrape.Run() })
	p.wg.Go(func() { _ = p.discoverNotify.Run() })
	p.wg.Go(func() { _ = p.scrape.Run(p.discoverScrape.SyncCh()) })
	p.wg.Go(func() { p.notifier.Run(p.discoverNotify.SyncCh()) })
	p.wg.Go(p.rules.Run)
	p.wg.Go(func() { p.backfill.run(ctx) })
	s.backfill.Store(p.backfill)
	return p, nil
}

// Reload re-reads the configuration file and applies it to every manager,
// in the order Prometheus applies it. On error the previous configuration
// stays in force where a manager refused the new one.
func (p *Server) Reload() (err error) {
	defer func() {
		result := "success"
		p.lastOK.Set(1)
		if err != nil {
			result = "failure"
			p.lastOK.Set(0)
		}
		p.reloads.WithLabelValues(result).Inc()
	}()
	var cfg *config.Config
	if p.file == "" {
		cfg, err = config.Load("", p.logger) // Prometheus's defaults, validated like a file
	} else {
		cfg, err = config.LoadFile(p.file, false, p.logger)
	}
	if err != nil {
		return fmt.Errorf("load %q: %w", p.file, err)
	}
	scrapeConfigs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("%s: scrape_configs: %w", p.file, err)
	}
	var ruleFiles []string
	for _, pat := range cfg.RuleFiles {
		fs, err := filepath.Glob(pat)
		if err != nil {
			return fmt.Errorf("%s: rule_files: %w", p.file, err)
		}
		// Prometheus accepts a pattern that matches nothing and evaluates
		// no rules, silently: a relative path written for another working
		// directory then leaves every alert dead. Refuse it instead.
		if len(fs) == 0 {
			return fmt.Errorf("%s: rule_files: pattern %q matches no file (relative patterns are resolved against the folder of %s)",
				p.file, pat, p.file)
		}
		ruleFiles = append(ruleFiles, fs...)
	}
	// The rules manager only says "error loading rules" when a file is bad;
	// parse first so the error names the file, line and problem.
	for _, f := range ruleFiles {
		if _, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p.store.parser, p.logger); len(errs) > 0 {
			return fmt.Errorf("%s: rule file %s: %w", p.file, f, errors.Join(errs...))
		}
	}
	steps := []struct {
		name  string
		apply func() error
	}{
		{"remote_write", func() error {
			if err := p.remote.ApplyConfig(cfg); err != nil {
				return err
			}
			return p.backfill.applyConfig(cfg)
		}},
		{"scrape", func() error { return p.scrape.ApplyConfig(cfg) }},
		{"scrape discovery", func() error {
			c := make(map[string]discovery.Configs, len(scrapeConfigs))
			for _, sc := range scrapeConfigs {
				c[sc.JobName] = sc.ServiceDiscoveryConfigs
			}
			return p.discoverScrape.ApplyConfig(c)
		}},
		{"alerting", func() error { return p.notifier.ApplyConfig(cfg) }},
		{"alertmanager discovery", func() error {
			c := make(map[string]discovery.Configs)
			for k, v := range cfg.AlertingConfig.AlertmanagerConfigs.ToMap() {
				c[k] = v.ServiceDiscoveryConfigs
			}
			return p.discoverNotify.ApplyConfig(c)
		}},
		{"rule_files", func() error {
			return p.rules.Update(time.Duration(cfg.GlobalConfig.EvaluationInterval), ruleFiles,
				cfg.GlobalConfig.ExternalLabels, p.externalURL.String(), nil)
		}},
	}
	var errs []error
	for _, st := range steps {
		if err := st.apply(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", p.file, st.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	p.mu.Lock()
	p.cfg = cfg
	p.mu.Unlock()
	p.logger.Info("configuration loaded", "file", p.file, "rule_files", len(ruleFiles),
		"alertmanagers", len(cfg.AlertingConfig.AlertmanagerConfigs), "remote_write", len(cfg.RemoteWriteConfigs),
		"scrape_configs", len(scrapeConfigs))
	return nil
}

// Config is the configuration in force, for /api/v1/status/config.
func (p *Server) Config() config.Config {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return *p.cfg
}

// APIDeps connects the HTTP API to the rules, Alertmanagers and scrape targets.
func (p *Server) APIDeps() APIDeps {
	return APIDeps{
		Rules:         p.rules,
		Alertmanagers: p.notifier,
		Targets:       p.scrape,
		ScrapePools:   p.scrape,
		Config:        p.Config,
		ExternalURL:   p.externalURL,
	}
}

// Stop stops rule evaluation first (so no new alerts), then sends what the
// notifier has queued, stops scraping and discovery, and flushes remote write.
func (p *Server) Stop() {
	p.store.backfill.Store(nil)
	p.rules.Stop()
	p.notifier.Stop()
	p.scrape.Stop()
	p.cancel()
	p.wg.Wait()
	if err := p.remote.Close(); err != nil {
		p.logger.Warn("closing remote write", "err", err)
	}
}
