package bantayextension

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/internal/store"
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
	heatmap *heatmap.Heatmap
	http    *http.Server
	wg      sync.WaitGroup
}

func newServer(set extension.Settings, cfg *Config) *Server {
	return &Server{
		cfg:    cfg,
		set:    set,
		logger: slog.New(zapslog.NewHandler(set.Logger.Core(), zapslog.WithName("bantay"))),
		reg:    prometheus.NewRegistry(),
	}
}

// Store is the embedded TSDB and query engine.
func (s *Server) Store() *store.Store { return s.store }

// Heatmap is the live heatmap aggregation and websocket hub.
func (s *Server) Heatmap() *heatmap.Heatmap { return s.heatmap }

// Start opens the store (replaying its WAL), rebuilds the heatmap from it so
// a restart does not blank the wall, and starts serving.
func (s *Server) Start(ctx context.Context, host component.Host) (err error) {
	defer func() {
		if err != nil {
			s.closeParts()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.store, err = store.Open(s.cfg.storeConfig(), s.reg, s.logger.With("component", "store")); err != nil {
		return err
	}
	if s.heatmap, err = heatmap.New(s.cfg.Heatmap, s.reg, s.logger.With("component", "heatmap")); err != nil {
		return err
	}
	if err = s.heatmap.Rebuild(ctx, s.store.DB()); err != nil {
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
	s.http, err = s.cfg.ToServer(ctx, host.GetExtensions(), s.set.TelemetrySettings, s.routes(ln.Addr()))
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.set.Logger.Error("bantay HTTP server stopped", zap.Error(err))
		}
	}()
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
	return &url.URL{Scheme: "http", Host: addr.String()}
}

func (s *Server) routes(addr net.Addr) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", s.store.APIHandler(store.APIDeps{
		Gatherer:    s.reg,
		Registerer:  s.reg,
		Logger:      s.logger.With("component", "api"),
		ExternalURL: s.externalURL(addr),
	})))
	for _, p := range heatmap.Paths() {
		mux.Handle(p, s.heatmap.Handler())
	}
	mux.Handle("/", web.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("Bantay is Healthy.\n")) }
	mux.HandleFunc("/-/healthy", ok)
	mux.HandleFunc("/-/ready", ok)
	return mux
}

// Shutdown stops serving, then closes the heatmap and flushes the TSDB. The
// collector calls it after the pipelines have stopped, so nothing is
// appending any more.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
		s.wg.Wait()
	}
	errs = append(errs, s.closeParts())
	return errors.Join(errs...)
}

func (s *Server) closeParts() error {
	var errs []error
	if s.heatmap != nil {
		errs = append(errs, s.heatmap.Close())
		s.heatmap = nil
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
		s.store = nil
	}
	return errors.Join(errs...)
}
