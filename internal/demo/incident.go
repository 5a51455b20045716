package demo

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionmiddleware"

	"github.com/bantay-noc/bantay/internal/demo/netsim"
)

// DefaultIncident is what the page's "Stage incident" button stages when
// the demo was started without -incident: Manila's Globe 5G to Davao
// (Globe's network in Davao) gets 80 ms more and 50 % loss for three
// minutes. The loss is what turns the cell red within seconds on a demo
// just started: latency is judged against the path's last hour, which on a
// young demo already holds the incident (docs/demo-network.md).
const DefaultIncident = "Davao/Globe: +80ms, 50% loss for 3m"

// PathIncident is the demo-only endpoint behind the page's incident
// button. GET answers the incident's state; POST stages the incident now.
const PathIncident = "/demo/incident"

// DemoHeader, on the demo's answers for the page ("/"), names PathIncident.
// The page shows the button only when it sees it; a deployment's collector
// never sends it, so the production page makes no request that fails (a
// 404 would be a console error on every wall screen).
const DemoHeader = "Bantay-Demo-Incident"

// incidents stages one incident at a time on the demo's network.
type incidents struct {
	ctx    context.Context // the demo's; an incident in force ends with it
	tables map[string]*netsim.Table
	inc    netsim.Incident // what the button stages
	logger *slog.Logger

	mu     sync.Mutex
	status IncidentStatus
}

// IncidentStatus is what GET and POST /demo/incident answer.
type IncidentStatus struct {
	Incident string `json:"incident"` // the grammar, as the button stages it
	// State is idle (the button stages it), pending (waiting out "after")
	// or active.
	State string `json:"state"`
	// Start and End (ms since the epoch; End 0 = until the demo stops)
	// are set while pending or active.
	Start int64 `json:"start,omitempty"`
	End   int64 `json:"end,omitempty"`
}

func newIncidents(ctx context.Context, tables map[string]*netsim.Table, inc netsim.Incident, logger *slog.Logger) *incidents {
	return &incidents{ctx: ctx, tables: tables, inc: inc, logger: logger, status: IncidentStatus{Incident: inc.Spec, State: "idle"}}
}

// stage applies inc after delay and restores the network once its For has
// passed (or the demo stops). It refuses while another incident is staged,
// so that restoring one never undoes part of another.
func (s *incidents) stage(inc netsim.Incident, delay time.Duration) (IncidentStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.State != "idle" {
		return s.status, false
	}
	start := time.Now().Add(delay)
	s.status = IncidentStatus{Incident: s.inc.Spec, State: "pending", Start: start.UnixMilli()}
	if inc.For > 0 {
		s.status.End = start.Add(inc.For).UnixMilli()
	}
	go s.run(inc, delay)
	return s.status, true
}

func (s *incidents) run(inc netsim.Incident, delay time.Duration) {
	defer s.set(func(st *IncidentStatus) { *st = IncidentStatus{Incident: s.inc.Spec, State: "idle"} })
	if !sleep(s.ctx, delay) {
		return
	}
	restore, err := inc.Apply(s.tables)
	if err != nil {
		s.logger.Error("incident not staged", "err", err)
		return
	}
	defer restore()
	started := time.Now()
	s.set(func(st *IncidentStatus) { st.State, st.Start = "active", started.UnixMilli() })
	s.logger.Warn("incident started", "incident", inc.Spec, "paths", len(inc.Paths()), "at", started.UTC().Format(time.RFC3339Nano))
	if inc.For == 0 {
		<-s.ctx.Done()
		return
	}
	if sleep(s.ctx, inc.For) {
		s.logger.Warn("incident ended", "incident", inc.Spec, "after", time.Since(started).Round(time.Millisecond))
	}
}

func (s *incidents) set(f func(*IncidentStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ServeHTTP is /demo/incident. POST stages the button's incident now,
// without its "after": 202, or 409 while one is already staged.
func (s *incidents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var st IncidentStatus
	code := http.StatusOK
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.mu.Lock()
		st = s.status
		s.mu.Unlock()
	case http.MethodPost:
		var ok bool
		if st, ok = s.stage(s.inc, 0); ok {
			code = http.StatusAccepted
		} else {
			code = http.StatusConflict
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method "+r.Method+" not allowed; use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

// controlType is the demo-only collector extension that serves
// /demo/incident on the bantay extension's listener, as an HTTP server
// middleware (extensions::bantay::middlewares), so the page reaches it on
// its own origin. Only the demo's collector has it; bantay-collector's
// component list does not, so a deployment's page never shows the button.
var controlType = component.MustNewType("bantay_demo")

type control struct {
	component.StartFunc
	component.ShutdownFunc
	handler http.Handler
}

// GetHTTPHandler routes /demo/incident to the demo and everything else to
// the bantay extension's own handler, telling the page (DemoHeader) that
// the endpoint is there.
func (c *control) GetHTTPHandler(context.Context) (extensionmiddleware.WrapHTTPHandlerFunc, error) {
	return func(_ context.Context, next http.Handler) (http.Handler, error) {
		mux := http.NewServeMux()
		mux.Handle(PathIncident, c.handler)
		mux.Handle("/", next)
		mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(DemoHeader, PathIncident)
			next.ServeHTTP(w, r)
		})
		return mux, nil
	}, nil
}

type controlConfig struct{}

func controlFactory(h http.Handler) extension.Factory {
	return extension.NewFactory(controlType,
		func() component.Config { return &controlConfig{} },
		func(context.Context, extension.Settings, component.Config) (extension.Extension, error) {
			return &control{handler: h}, nil
		},
		component.StabilityLevelDevelopment)
}
