package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
)

// APIDeps are the parts of a Prometheus server besides the TSDB that the
// HTTP API reports on. Each may be nil: the API then answers with an empty
// list, which is the truth (no rules loaded, no Alertmanager configured).
type APIDeps struct {
	Rules         apiv1.RulesRetriever
	Alertmanagers apiv1.AlertmanagerRetriever
	Targets       apiv1.TargetRetriever
	ScrapePools   apiv1.ScrapePoolsRetriever
	// Config returns the Prometheus-format configuration shown at /api/v1/status/config.
	Config func() config.Config
	// Gatherer serves the API's own telemetry endpoints (e.g. TSDB status).
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// ExternalURL is where users reach this API (used in alert links).
	ExternalURL *url.URL
}

// BuildInfo is what /api/v1/status/buildinfo reports. Grafana reads it to
// pick version-dependent features, so the version is that of the Prometheus
// release whose API and engine are compiled in.
var BuildInfo = &apiv1.PrometheusVersion{
	Version:   prometheusVersion(),
	Revision:  "bantay",
	Branch:    "bantay",
	BuildUser: "bantay",
	GoVersion: runtime.Version(),
}

// prometheusVersion maps the Go module version of the Prometheus library
// (v0.316.0) to the Prometheus release it is cut from (3.16.0).
func prometheusVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			var minor, patch int
			if dep.Path == "github.com/prometheus/prometheus" {
				if _, err := fmt.Sscanf(dep.Version, "v0.3%02d.%d", &minor, &patch); err == nil {
					return fmt.Sprintf("3.%d.%d", minor, patch)
				}
			}
		}
	}
	return "3.16.0"
}

// APIHandler serves the Prometheus HTTP API v1 (query, query_range, series,
// labels, label values, metadata, rules, alerts, status, …) over the store,
// using Prometheus's own implementation so response shapes, error formats and
// PromQL semantics are exactly Prometheus's. Mount it at /api/v1.
func (s *Store) APIHandler(d APIDeps) http.Handler {
	if d.Config == nil {
		d.Config = func() config.Config { return config.DefaultConfig }
	}
	if d.Logger == nil {
		d.Logger = s.logger
	}
	if d.ExternalURL == nil {
		d.ExternalURL = &url.URL{Scheme: "http", Host: "localhost"}
	}
	rulesFn := func(context.Context) apiv1.RulesRetriever { return orNoRules(d.Rules) }
	amFn := func(context.Context) apiv1.AlertmanagerRetriever { return orNoAlertmanagers(d.Alertmanagers) }
	targetsFn := func(context.Context) apiv1.TargetRetriever { return orNoTargets(d.Targets) }
	poolsFn := func(context.Context) apiv1.ScrapePoolsRetriever { return orNoPools(d.ScrapePools) }
	ready := func(f http.HandlerFunc) http.HandlerFunc { return f }
	hostname, _ := os.Hostname()
	cwd, _ := os.Getwd()
	runtimeInfo := func() (apiv1.RuntimeInfo, error) {
		return apiv1.RuntimeInfo{
			StartTime:           s.started,
			CWD:                 cwd,
			Hostname:            hostname,
			ServerTime:          time.Now().UTC(),
			ReloadConfigSuccess: true,
			LastConfigTime:      s.started,
			GoroutineCount:      runtime.NumGoroutine(),
			GOMAXPROCS:          runtime.GOMAXPROCS(0),
			GOGC:                os.Getenv("GOGC"),
			GODEBUG:             os.Getenv("GODEBUG"),
			StorageRetention:    s.cfg.Retention.String(),
		}, nil
	}
	noNotifications := func() []notifications.Notification { return nil }
	noSubscription := func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false }

	api := apiv1.NewAPI(s.engine, s.db, s.db, s.db,
		poolsFn, targetsFn, amFn, d.Config,
		map[string]string{"storage.tsdb.path": s.cfg.Dir, "storage.tsdb.retention.time": s.cfg.Retention.String()},
		apiv1.GlobalURLOptions{ListenAddress: d.ExternalURL.Host, Host: d.ExternalURL.Host, Scheme: d.ExternalURL.Scheme},
		ready, adminStats{s}, s.cfg.Dir,
		false, // admin API (delete series, snapshot) stays off: not for a NOC read path
		false, 0,
		d.Logger, rulesFn,
		s.cfg.RemoteRead.SampleLimit, s.cfg.RemoteRead.ConcurrencyLimit, s.cfg.RemoteRead.MaxBytesInFrame,
		false, nil, runtimeInfo, BuildInfo,
		noNotifications, noSubscription,
		d.Gatherer, d.Registerer, nil,
		false, nil, // remote-write receiver off: probes send OTLP through the collector pipeline
		false, false, false, // the API's own OTLP endpoint off, for the same reason
		s.cfg.LookbackDelta,
		false, false, nil,
		features.DefaultRegistry,
		apiv1.OpenAPIOptions{ExternalURL: d.ExternalURL.String(), Version: BuildInfo.Version},
		s.parser, false, s.cfg.QueryTimeout,
	)
	r := route.New()
	api.Register(r)
	mux := http.NewServeMux()
	mux.Handle("/", r)
	mux.Handle("/metadata", &s.metadata)
	return mux
}

// adminStats adapts the TSDB to the API's status endpoints, as Prometheus's
// own readyStorage does.
type adminStats struct{ s *Store }

func (a adminStats) CleanTombstones() (err error) {
	a.s.db.withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { err = db.CleanTombstones() })
	return err
}
func (a adminStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) (err error) {
	a.s.db.withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { err = db.Delete(ctx, mint, maxt, ms...) })
	return err
}
func (a adminStats) Snapshot(dir string, withHead bool) (err error) {
	a.s.db.withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { err = db.Snapshot(dir, withHead) })
	return err
}
func (a adminStats) Stats(statsByLabelName string, limit int) (st *tsdb.Stats, _ error) {
	a.s.db.withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { st = db.Head().Stats(statsByLabelName, limit) })
	return st, nil
}
func (a adminStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	var stats *tsdb.DBStats
	a.s.db.withTSDB(func(_ *tsdb.DB, st *tsdb.DBStats) { stats = st })
	return stats.Head.WALReplayStatus.GetWALReplayStatus(), nil
}
func (a adminStats) BlockMetas() (m []tsdb.BlockMeta, _ error) {
	a.s.db.withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { m = db.BlockMetas() })
	return m, nil
}

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }
func orNoRules(r apiv1.RulesRetriever) apiv1.RulesRetriever {
	if r == nil {
		return noRules{}
	}
	return r
}

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }
func orNoAlertmanagers(a apiv1.AlertmanagerRetriever) apiv1.AlertmanagerRetriever {
	if a == nil {
		return noAlertmanagers{}
	}
	return a
}

type noTargets struct{}

func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return nil }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("no scrape pools: bantay ingests OTLP, it does not scrape")
}
func orNoTargets(t apiv1.TargetRetriever) apiv1.TargetRetriever {
	if t == nil {
		return noTargets{}
	}
	return t
}

type noPools struct{}

func (noPools) ScrapePools() []string { return nil }
func orNoPools(p apiv1.ScrapePoolsRetriever) apiv1.ScrapePoolsRetriever {
	if p == nil {
		return noPools{}
	}
	return p
}
