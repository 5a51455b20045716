package bantayextension

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/bantay-noc/bantay/collector/sharedstate"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/meshreg"
	"github.com/bantay-noc/bantay/internal/store"
	"github.com/bantay-noc/bantay/internal/webauth"
	"github.com/bantay-noc/bantay/web"
)

// Server is the running extension. Exporters reach its parts through the
// Store and Heatmap methods (they look it up with host.GetExtensions).
type Server struct {
	cfg    *Config
	set    extension.Settings
	logger *slog.Logger
	reg    *prometheus.Registry

	store   *store.Store
	prom    *store.Server
	heatmap *heatmap.Heatmap // set and cleared under gmu
	events  *events.Bus
	access  *webauth.Policy
	http    *http.Server
	wg      sync.WaitGroup
	stop    chan struct{}

	// gazetteers are what citytag processors handed over (SetGazetteer),
	// by processor id.
	gmu        sync.Mutex
	gazetteers map[component.ID]*gazetteer.Gazetteer
	// mesh are the mesh registries citytag processors shared (ShareMesh).
	mesh map[component.ID][]meshreg.Site
	// meshAPI serves meshreg.Path; nil when mesh.authenticator is unset.
	meshAPI *meshEndpoint

	// ready is set by the collector (PipelineWatcher) once every pipeline and
	// receiver has started, and cleared before receivers stop. Extensions start
	// before receivers, so without it /-/ready would say yes while the OTLP
	// ports are still closed and a probe or load balancer would be refused.
	ready atomic.Bool

	// rebuildFrom is what the heatmap rebuilds from, given the store; nil
	// means the store itself. Tests slow the rebuild through it.
	rebuildFrom func(storage.Queryable) storage.Queryable
}

var _ extensioncapabilities.PipelineWatcher = (*Server)(nil)

// Ready is called by the collector when all pipelines accept data.
func (s *Server) Ready() error {
	s.ready.Store(true)
	return nil
}

// NotReady is called by the collector before the receivers stop.
func (s *Server) NotReady() error {
	s.ready.Store(false)
	return nil
}

func newServer(set extension.Settings, cfg *Config) *Server {
	return &Server{
		cfg:    cfg,
		set:    set,
		logger: slog.New(zapslog.NewHandler(set.Logger.Core(), zapslog.WithName("bantay"))),
		reg:    prometheus.NewRegistry(),
	}
}

var _ sharedstate.Provider = (*Server)(nil)

// Store is the embedded TSDB the tsdb exporter appends to (nil before
// Start). The interface is never a typed nil, so a caller's nil check holds.
func (s *Server) Store() sharedstate.Store {
	if s.store == nil {
		return nil
	}
	return s.store
}

// Heatmap is the live heatmap aggregation and websocket hub (nil before
// Start).
func (s *Server) Heatmap() sharedstate.Heatmap {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.heatmap == nil {
		return nil
	}
	return s.heatmap
}

// Events is the collector's event bus (rejected probes, rule reloads, …),
// read by the bantay_events receiver.
func (s *Server) Events() *events.Bus { return s.events }

// ShareGazetteer takes the gazetteer a citytag processor tags with (it calls
// this at its Start) and gives it to the heatmap, so a city the operator
// added in citytag's config is drawn in its island group, with its region
// and map position. With several citytag processors the one with the
// lowest id is used, and a warning says so if their cities differ.
func (s *Server) ShareGazetteer(from component.ID, g *gazetteer.Gazetteer) {
	if g == nil {
		return
	}
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.gazetteers == nil {
		s.gazetteers = map[component.ID]*gazetteer.Gazetteer{}
	}
	s.gazetteers[from] = g
	s.applyGazetteerLocked()
}

// applyGazetteerLocked gives the heatmap the chosen gazetteer. Caller holds gmu.
func (s *Server) applyGazetteerLocked() {
	if s.heatmap == nil || len(s.gazetteers) == 0 {
		return
	}
	ids := make([]component.ID, 0, len(s.gazetteers))
	for id := range s.gazetteers {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b component.ID) int { return cmp.Compare(a.String(), b.String()) })
	use := s.gazetteers[ids[0]]
	for _, id := range ids[1:] {
		if !slices.EqualFunc(use.Cities(), s.gazetteers[id].Cities(), sameCity) {
			s.set.Logger.Warn("citytag processors have different cities; the heatmap places cities by the first one's",
				zap.Stringer("used", ids[0]), zap.Stringer("ignored", id))
		}
	}
	s.heatmap.SetGazetteer(use)
}

func sameCity(a, b gazetteer.City) bool {
	return a.Name == b.Name && a.Region == b.Region && a.IslandGroup == b.IslandGroup &&
		a.Latitude == b.Latitude && a.Longitude == b.Longitude && slices.Equal(a.Aliases, b.Aliases)
}

// Start opens the store (replaying its WAL), starts the heatmap's rebuild
// from it so a restart does not blank the wall, and starts serving. The
// rebuild runs in the background (heatmap.StartRebuild): the collector is
// ready, and stores what it is sent, while the wall fills in.
func (s *Server) Start(ctx context.Context, host component.Host) (err error) {
	defer func() {
		if err != nil {
			s.closeParts()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.events, err = events.NewBus(s.cfg.EventsBuffer, s.reg); err != nil {
		return err
	}
	if s.store, err = store.Open(s.cfg.storeConfig(), s.reg, s.logger.With("component", "store")); err != nil {
		return err
	}
	hm, err := heatmap.New(s.cfg.Heatmap, s.reg, s.logger.With("component", "heatmap"))
	if err != nil {
		return err
	}
	s.gmu.Lock()
	s.heatmap = hm
	s.applyGazetteerLocked()
	s.gmu.Unlock()
	var history storage.Queryable = s.store.DB()
	if s.rebuildFrom != nil {
		history = s.rebuildFrom(history)
	}
	if err = s.heatmap.StartRebuild(history); err != nil {
		// A wall that starts empty is better than no collector: log and go on.
		s.set.Logger.Warn("heatmap rebuild from the TSDB failed; it fills from live data", zap.Error(err))
	}
	if err = s.heatmap.Start(ctx); err != nil {
		return err
	}
	ln, err := s.cfg.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.NetAddr.Endpoint, err)
	}
	extURL := s.externalURL(ln.Addr())
	if s.prom, err = store.NewServer(s.store, s.cfg.PrometheusConfig, extURL, s.reg, s.logger); err != nil {
		_ = ln.Close()
		return fmt.Errorf("prometheus_config: %w", err)
	}
	if err = s.startAccess(extURL); err != nil {
		_ = ln.Close()
		return err
	}
	if s.meshAPI, err = s.newMeshEndpoint(host); err != nil {
		_ = ln.Close()
		return err
	}
	s.publishRulesLoaded(nil)
	s.stop = make(chan struct{})
	s.wg.Go(s.reloadOnSIGHUP)
	s.http, err = s.cfg.ToServer(ctx, host.GetExtensions(), s.set.TelemetrySettings, s.routes(extURL))
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.wg.Go(func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.set.Logger.Error("bantay HTTP server stopped", zap.Error(err))
		}
	})
	s.set.Logger.Info("bantay server listening", zap.String("address", ln.Addr().String()),
		zap.String("storage", s.cfg.Storage.Path))
	return nil
}

func (s *Server) externalURL(addr net.Addr) *url.URL {
	if s.cfg.ExternalURL != "" {
		if u, err := url.Parse(s.cfg.ExternalURL); err == nil {
			return u
		}
	}
	scheme := "http"
	if s.cfg.TLS.HasValue() {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: addr.String()}
}

// startAccess builds the listener's access policy and warns about what it
// leaves open. The session cookie is Secure when browsers come over https.
func (s *Server) startAccess(extURL *url.URL) (err error) {
	s.access, err = webauth.New(s.cfg.Access, webauth.Options{
		Secure: extURL.Scheme == "https", Registerer: s.reg, Logger: s.set.Logger})
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	switch {
	case !s.access.Enabled():
		s.set.Logger.Warn("the bantay listener has no access policy: anyone who can reach it can read the Prometheus API, "+
			"/metrics, the heatmap and the page, and POST /-/reload; set access.credentials (docs/security.md)",
			zap.String("address", s.cfg.NetAddr.Endpoint))
	case extURL.Scheme != "https":
		s.set.Logger.Warn("the bantay listener checks credentials over plain HTTP: tokens, passwords and session cookies "+
			"cross the network readable; set tls (docs/security.md)", zap.String("address", s.cfg.NetAddr.Endpoint))
	}
	return nil
}

// reload re-reads the Prometheus-format configuration and tells the event bus.
func (s *Server) reload() error {
	err := s.prom.Reload()
	s.publishRulesLoaded(err)
	if err != nil {
		s.set.Logger.Error("reloading prometheus_config failed; the previous rules stay in force", zap.Error(err))
	}
	return err
}

// publishRulesLoaded tells the event feed which rules are in force.
func (s *Server) publishRulesLoaded(err error) {
	groups, rules := 0, 0
	for _, g := range s.prom.APIDeps().Rules.RuleGroups() {
		groups++
		rules += len(g.Rules())
	}
	s.events.Publish(events.RulesReloaded(time.Now(), groups, rules, err))
}

// reloadOnSIGHUP reloads like Prometheus does. (The collector also re-reads
// its own configuration on SIGHUP; with the service.partialReload feature
// gate the distribution turns on, an unchanged configuration keeps every
// pipeline running and only this reload takes effect.)
func (s *Server) reloadOnSIGHUP() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-s.stop:
			return
		case <-hup:
			_ = s.reload()
		}
	}
}

func (s *Server) routes(extURL *url.URL) http.Handler {
	mux := http.NewServeMux()
	deps := s.prom.APIDeps()
	deps.Gatherer, deps.Registerer = s.reg, s.reg
	deps.Logger = s.logger.With("component", "api")
	acc := s.access
	mux.Handle("/api/v1/", acc.Require(webauth.Read, http.StripPrefix("/api/v1", s.store.APIHandler(deps))))
	mux.Handle("POST /-/reload", acc.Require(webauth.Admin, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := s.reload(); err != nil {
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
		}
	})))
	for _, p := range heatmap.Paths() {
		need := webauth.Read
		if p == hub.PathWS {
			need = webauth.Page // the heatmap then checks its Origin
		}
		mux.Handle(p, acc.Require(need, s.heatmap.Handler()))
	}
	mux.Handle("/", acc.Require(webauth.Page, web.Handler()))
	mux.Handle("/metrics", acc.Require(webauth.Read, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	acc.Register(mux)
	if s.meshAPI != nil {
		// The probe's own token, not a reader's: the route is outside the
		// access policy and is authenticated by the probe authenticator.
		mux.Handle("GET "+meshreg.Path, s.meshAPI)
	}
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("Bantay is Healthy.\n"))
	})
	// Same wording and status as Prometheus's /-/ready, so probes written
	// for Prometheus read it unchanged. A store that cannot write its WAL
	// (full disk) refuses every append, so it is not ready either.
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() || !s.store.Writable() {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("Bantay is Ready.\n"))
	})
	return mux
}

// Shutdown stops serving, then closes the heatmap and flushes the TSDB. The
// collector calls it after the pipelines have stopped, so nothing is
// appending any more.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	if s.stop != nil {
		close(s.stop)
	}
	s.wg.Wait()
	errs = append(errs, s.closeParts())
	return errors.Join(errs...)
}

func (s *Server) closeParts() error {
	var errs []error
	if s.prom != nil {
		s.prom.Stop() // rules first: no evaluation against a closing store
		s.prom = nil
	}
	s.gmu.Lock()
	hm := s.heatmap
	s.heatmap = nil
	s.gmu.Unlock()
	if hm != nil {
		errs = append(errs, hm.Close())
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
		s.store = nil
	}
	if s.events != nil {
		s.events.Close()
		s.events = nil
	}
	return errors.Join(errs...)
}
