// Package demo runs the whole Bantay system on one machine: the collector
// distribution with its embedded store, one probe per city (Manila, Baguio,
// Davao), each with two uplinks on different carriers and network types,
// and per-city target servers (a UDP reflector and an HTTP server) behind
// user-space impairment proxies that give every (uplink, destination) pair
// realistic delay, jitter and loss (internal/demo/netsim, docs/demo-network.md).
// Everything it measures is real: real sockets, real probes, real OTLP.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/bantay-noc/bantay/collector"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/probes/agent"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/reflector"
)

// Options configures a demo run. Zero values take the defaults in Defaults.
type Options struct {
	// DataDir holds the TSDB and the generated configs.
	DataDir string
	// HTTPAddr serves the web page, /ws and the Prometheus API.
	HTTPAddr string
	// GRPCAddr and OTLPHTTPAddr are the collector's OTLP listeners.
	GRPCAddr     string
	OTLPHTTPAddr string
	// TelemetryPort is the collector's own /metrics port (on 127.0.0.1).
	TelemetryPort int
	// HealthAddr is the health_check extension's listener.
	HealthAddr string
	// ProbeInterval is how often each target is measured, and how often
	// probes export. The demo uses 5 s so the wall fills within seconds;
	// production probes default to 15 s.
	ProbeInterval time.Duration
	// MeshRefresh is how often the probes fetch the mesh registry, which
	// gives them the other cities' reflectors (production default 1 m).
	MeshRefresh time.Duration
	// AlertmanagerURL, if set (http://host:port), receives the alerts the
	// shipped rules fire.
	AlertmanagerURL string
	// LokiURL, if set, receives the events (path state changes, probe
	// failure bursts, collector events) through the loki exporter: a Loki
	// base URL, or a full push URL ending in /push (e.g. VictoriaLogs').
	LokiURL string
	// RemoteWriteURL, if set, is a Prometheus remote-write endpoint
	// (e.g. http://host:9090/api/v1/write) that receives everything the
	// store holds, as a remote_write entry of the generated prometheus.yml.
	RemoteWriteURL string
	// RuleFiles are extra Prometheus rule files loaded after the shipped
	// ones. They are referenced in place, not copied, so a caller can
	// rewrite one and POST /-/reload.
	RuleFiles []string
	// Logger receives every component's logs.
	Logger *slog.Logger
	// Network, if not nil, receives the demo's impairment tables (one per
	// destination city) so a caller can stage an incident while it runs.
	Network func(map[string]*netsim.Table)
	// Probes, if not nil, receives the demo's probe agents once they run,
	// so a caller can take a probe offline (its paths go stale) and bring
	// it back while the demo runs.
	Probes func(*Probes)
	// Collector, if not nil, receives the demo's collector once it runs,
	// so a caller can stop it and start it again (a collector outage)
	// while the probes keep measuring.
	Collector func(*Collector)
	// Incident, if not nil, is staged on the simulated network once the
	// demo runs (after its After), and is what the page's "Stage incident"
	// button stages; without it the button stages DefaultIncident.
	Incident *netsim.Incident
	// Heatmap overrides keys of the bantay extension's heatmap
	// configuration (docs/heatmap.md), as YAML would give them: durations
	// as strings, events.* as a nested map, e.g.
	// {"stale_after": 3, "events": map[string]any{"hold": "1s"}}.
	// resolution and probe_interval default to ProbeInterval.
	Heatmap map[string]any
	// Histograms is the probes' recording.histograms (classic, exponential
	// or both; empty: the probe's default, classic).
	Histograms string
}

// Defaults are the demo's standard ports, as in the README.
func Defaults() Options {
	return Options{
		DataDir:       "bantay-demo-data",
		HTTPAddr:      "127.0.0.1:8080",
		GRPCAddr:      "127.0.0.1:4317",
		OTLPHTTPAddr:  "127.0.0.1:4318",
		TelemetryPort: 8888,
		HealthAddr:    "127.0.0.1:13133",
		ProbeInterval: 5 * time.Second,
		MeshRefresh:   10 * time.Second,
	}
}

// FreeLoopbackPorts returns Options whose listeners are all on 127.0.0.1
// ports that were free a moment ago, to run a demo beside another one (and
// for tests). Other fields are left zero (defaults).
func FreeLoopbackPorts() (Options, error) {
	var addrs [5]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Options{}, fmt.Errorf("find a free loopback port: %w", err)
		}
		addrs[i] = l.Addr().String()
		defer l.Close() // held until all are chosen, so no two are the same
	}
	_, port, err := net.SplitHostPort(addrs[4])
	if err != nil {
		return Options{}, err
	}
	telemetry, err := strconv.Atoi(port)
	if err != nil {
		return Options{}, err
	}
	return Options{HTTPAddr: addrs[0], GRPCAddr: addrs[1], OTLPHTTPAddr: addrs[2], HealthAddr: addrs[3], TelemetryPort: telemetry}, nil
}

func (o Options) withDefaults() Options {
	d := Defaults()
	if o.DataDir == "" {
		o.DataDir = d.DataDir
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = d.HTTPAddr
	}
	if o.GRPCAddr == "" {
		o.GRPCAddr = d.GRPCAddr
	}
	if o.OTLPHTTPAddr == "" {
		o.OTLPHTTPAddr = d.OTLPHTTPAddr
	}
	if o.TelemetryPort == 0 {
		o.TelemetryPort = d.TelemetryPort
	}
	if o.HealthAddr == "" {
		o.HealthAddr = d.HealthAddr
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = d.ProbeInterval
	}
	if o.MeshRefresh == 0 {
		o.MeshRefresh = d.MeshRefresh
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return o
}

// Run starts everything, blocks until ctx is cancelled, then stops
// everything in order (probes flush first, then the collector). ready, if
// not nil, is called once the collector answers and the probes run.
func Run(ctx context.Context, opts Options, ready func()) error {
	opts = opts.withDefaults()
	// Checked before anything starts; the probes' own validation would
	// only say so once the collector runs.
	if opts.Histograms != "" && !slices.Contains(config.HistogramModes, opts.Histograms) {
		return fmt.Errorf("histograms: %q is not one of %s", opts.Histograms, strings.Join(config.HistogramModes, ", "))
	}
	// Every path the demo writes into a config is absolute, resolved
	// against the directory the user ran it from (see files).
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return fmt.Errorf("data dir %q: %w", opts.DataDir, err)
	}
	opts.DataDir = dataDir
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	tables := netsim.DemoProfiles()
	if opts.Network != nil {
		opts.Network(tables)
	}
	sites, err := startSites(tables, opts.Logger)
	if err != nil {
		return err
	}
	defer sites.close()

	inc := opts.Incident
	if inc == nil {
		def, err := netsim.ParseIncident(DefaultIncident)
		if err != nil {
			return err
		}
		inc = &def
	}
	incCtx, endIncidents := context.WithCancel(ctx) // a staged incident ends with Run
	defer endIncidents()
	staged := newIncidents(incCtx, tables, *inc, opts.Logger)

	cfg, err := writeConfigs(opts, sites)
	if err != nil {
		return err
	}
	if err := collector.EnableFeatureGates(); err != nil {
		return err
	}
	set := settings(cfg.Collector, staged)
	set.DisableGracefulShutdown = true // the demo owns signals and shuts down in order
	col := &Collector{set: set, readyURL: "http://" + opts.HTTPAddr + "/-/ready", failed: make(chan error, 1)}
	if err := col.Start(ctx); err != nil {
		return err
	}

	runCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	probes := &Probes{ctx: runCtx, logger: opts.Logger, cfgs: map[string]*config.Config{}, running: map[string]*runningProbe{}}
	for _, city := range netsim.DemoCities() {
		pc, err := probeConfig(city, opts, sites, cfg.TokenFiles)
		if err == nil {
			probes.cfgs[pc.Probe.ID] = pc
			err = probes.Start(pc.Probe.ID)
		}
		if err != nil {
			stopProbes()
			_ = probes.stopAll()
			_ = col.Stop()
			return err
		}
	}
	if opts.Probes != nil {
		opts.Probes(probes)
	}
	if opts.Collector != nil {
		opts.Collector(col)
	}
	if opts.Incident != nil {
		staged.stage(*opts.Incident, opts.Incident.After)
	}
	if ready != nil {
		ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-col.failed:
		runErr = fmt.Errorf("collector stopped: %w", runErr)
	}
	stopProbes()
	probeErr := probes.stopAll() // probes flush their last measurements to the running collector
	return errors.Join(runErr, col.Stop(), probeErr)
}

// Collector is the demo's collector. A caller of Run gets it through
// Options.Collector to stage a collector outage: Stop it, and Start it
// again on the same data dir and configuration, as an operator restarts a
// deployment's collector, while the probes keep measuring and queue.
type Collector struct {
	set      otelcol.CollectorSettings
	readyURL string
	// failed receives the error of a collector that stopped without Stop.
	failed chan error

	mu  sync.Mutex
	run *collectorRun // nil while stopped
}

// collectorRun is one start of the collector.
type collectorRun struct {
	col    *otelcol.Collector
	exited chan error  // Run's result
	stop   atomic.Bool // Stop was called: its exit is no failure
}

// Start starts the collector and returns once it is ready (its store open,
// its pipelines running), or its error.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run != nil {
		return errors.New("demo: the collector is already running")
	}
	col, err := otelcol.NewCollector(c.set)
	if err != nil {
		return fmt.Errorf("create collector: %w", err)
	}
	r := &collectorRun{col: col, exited: make(chan error, 1)}
	ranOut := make(chan error, 1)
	go func() {
		err := col.Run(context.Background())
		ranOut <- err
		if !r.stop.Load() {
			select {
			case c.failed <- err:
			default:
			}
		}
		r.exited <- err
	}()
	if err := waitReady(ctx, c.readyURL, ranOut); err != nil {
		r.stop.Store(true)
		col.Shutdown()
		<-r.exited
		return err
	}
	c.run = r
	return nil
}

// Stop shuts the collector down (its store closes, its listeners go away)
// and returns once it has; probes then find it unreachable. Stopping a
// stopped collector does nothing.
func (c *Collector) Stop() error {
	c.mu.Lock()
	r := c.run
	c.run = nil
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	r.stop.Store(true)
	r.col.Shutdown()
	return <-r.exited
}

// settings are bantay-collector's, with the demo's control endpoint
// (serving control) added to its components.
func settings(configFile string, control http.Handler) otelcol.CollectorSettings {
	set := collector.Settings([]string{configFile})
	set.Factories = func() (otelcol.Factories, error) {
		f, err := collector.Components()
		if err == nil {
			f.Extensions[controlType] = controlFactory(control)
		}
		return f, err
	}
	return set
}

// Probes are the demo's running probe agents, one per city. A caller of
// Run gets them through Options.Probes to stage a probe outage.
type Probes struct {
	ctx    context.Context // the demo's; every agent runs under it
	logger *slog.Logger
	cfgs   map[string]*config.Config

	mu      sync.Mutex
	running map[string]*runningProbe
}

type runningProbe struct {
	cancel context.CancelFunc
	done   chan error // Run's result
}

// Start starts probe id (e.g. "bag-01") again after Stop: a new agent with
// the same configuration, whose counters start afresh as after a reboot.
func (p *Probes) Start(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg, ok := p.cfgs[id]
	if !ok {
		return fmt.Errorf("demo: no probe %q", id)
	}
	if _, ok := p.running[id]; ok {
		return fmt.Errorf("demo: probe %s is already running", id)
	}
	if p.ctx.Err() != nil {
		return fmt.Errorf("demo: probe %s not started, the demo is stopping", id)
	}
	a, err := agent.New(cfg, p.logger)
	if err != nil {
		return fmt.Errorf("probe %s: %w", id, err)
	}
	ctx, cancel := context.WithCancel(p.ctx)
	r := &runningProbe{cancel: cancel, done: make(chan error, 1)}
	p.running[id] = r
	go func() { r.done <- a.Run(ctx) }()
	return nil
}

// Stop takes probe id offline: it stops measuring, makes its final export
// and sends nothing more. Stop returns once the agent has finished.
func (p *Probes) Stop(id string) error {
	p.mu.Lock()
	r, ok := p.running[id]
	delete(p.running, id)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("demo: probe %q is not running", id)
	}
	r.cancel()
	if err := <-r.done; err != nil {
		return fmt.Errorf("probe %s: %w", id, err)
	}
	return nil
}

// Token is probe id's bearer token, for a caller that sends OTLP as that
// probe (the collector authenticates every request, as in a deployment).
func (p *Probes) Token(id string) (string, error) {
	cfg, ok := p.cfgs[id]
	if !ok {
		return "", fmt.Errorf("demo: no probe %q", id)
	}
	b, err := os.ReadFile(cfg.Collector.TokenFile)
	if err != nil {
		return "", fmt.Errorf("demo: probe %s token: %w", id, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Client is an HTTP client that sends probe id's bearer token with every
// request: for a caller that posts OTLP to the demo as that probe.
func (p *Probes) Client(id string, timeout time.Duration) (*http.Client, error) {
	token, err := p.Token(id)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: timeout, Transport: bearer{token, http.DefaultTransport}}, nil
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// stopAll stops every running probe at once and waits for all of them.
func (p *Probes) stopAll() error {
	p.mu.Lock()
	running := p.running
	p.running = map[string]*runningProbe{}
	p.mu.Unlock()
	for _, r := range running {
		r.cancel()
	}
	var errs []error
	for id, r := range running {
		if err := <-r.done; err != nil {
			errs = append(errs, fmt.Errorf("probe %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func waitReady(ctx context.Context, url string, colErr <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-colErr:
			return fmt.Errorf("collector failed to start: %w", err)
		case <-deadline:
			return fmt.Errorf("collector not ready at %s after 60s", url)
		case <-tick.C:
		}
	}
}

// site is one city's target servers and the impairment proxies in front of them.
type site struct {
	ReflectorAddr string // proxy in front of the UDP reflector
	WebURL        string // proxy in front of the HTTP server
}

type sites struct {
	byCity  map[string]site
	closers []func() error
}

func (s *sites) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

func startSites(tables map[string]*netsim.Table, logger *slog.Logger) (*sites, error) {
	s := &sites{byCity: map[string]site{}}
	for _, city := range netsim.DemoCities() {
		refl, err := reflector.Listen("127.0.0.1:0", logger.With("reflector", city))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s reflector: %w", city, err)
		}
		go func() { _ = refl.Serve(context.Background()) }()
		s.closers = append(s.closers, refl.Close)
		udp, err := netsim.NewUDPProxy("127.0.0.1:0", refl.Addr().String(), tables[city], netsim.Options{})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s udp impairment: %w", city, err)
		}
		s.closers = append(s.closers, udp.Close)

		web, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.close()
			return nil, err
		}
		srv := &http.Server{Handler: healthHandler(city), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(web) }()
		s.closers = append(s.closers, srv.Close)
		tcp, err := netsim.NewTCPProxy("127.0.0.1:0", web.Addr().String(), tables[city], netsim.Options{})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s tcp impairment: %w", city, err)
		}
		s.closers = append(s.closers, tcp.Close)
		s.byCity[city] = site{ReflectorAddr: udp.Addr().String(), WebURL: "http://" + tcp.Addr().String() + "/health"}
	}
	return s, nil
}

func healthHandler(city string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintf(w, "ok from %s\n", city)
	})
}

// probeConfig builds the city's probe config as YAML and parses it with the
// probe's own loader, so the demo exercises the same validation as a real
// deployment.
func probeConfig(city string, opts Options, s *sites, tokenFiles map[string]string) (*config.Config, error) {
	var b strings.Builder
	var id string
	var uplinks []netsim.DemoUplink
	for _, u := range netsim.DemoUplinks() {
		if u.City == city {
			id = u.Probe
			uplinks = append(uplinks, u)
		}
	}
	err := probeTemplate.Execute(&b, map[string]any{
		"ID": id, "City": city, "Endpoint": opts.GRPCAddr, "TokenFile": tokenFiles[id], "Interval": opts.ProbeInterval,
		"QueueDir": queueDir(opts.DataDir, id), "Listener": "http://" + opts.HTTPAddr, "MeshRefresh": opts.MeshRefresh,
		"Timeout": min(2*time.Second, opts.ProbeInterval*8/10),
		"Uplinks": uplinks, "Sites": s.byCity, "Cities": netsim.DemoCities(),
	})
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse("demo probe "+id, []byte(b.String()))
	if err == nil && opts.Histograms != "" {
		cfg.Recording.Histograms = opts.Histograms
		err = cfg.Validate()
	}
	return cfg, err
}

// queueDir is where probe id keeps what the collector did not acknowledge:
// its own directory under the data dir (a queue file is locked by the probe
// that has it open), kept across demo runs as a deployment keeps it across
// probe restarts, so the demo runs the store-and-forward path the README
// asks deployments to run.
func queueDir(dataDir, id string) string {
	return filepath.Join(dataDir, "queue", id)
}

var probeTemplate = template.Must(template.New("probe").Parse(`
probe: {id: {{.ID}}, city: {{.City}}, environment: demo}
collector:
  endpoint: {{.Endpoint}}
  protocol: grpc
  tls: {insecure: true}
  token_file: {{printf "%q" .TokenFile}}
  export_interval: {{.Interval}}
  timeout: 5s
uplinks:
{{- range .Uplinks}}
  - {name: {{.Name}}, carrier: {{.Carrier}}, network_type: {{.NetworkType}}, bind_address: {{.Addr}}}
{{- end}}
queue: {dir: {{printf "%q" .QueueDir}}}
defaults: {interval: {{.Interval}}, timeout: {{.Timeout}}}
# The other cities' reflectors come from the collector's mesh registry.
mesh: {collector: {{printf "%q" .Listener}}, refresh: {{.MeshRefresh}}, methods: [udp]}
targets:
{{- with index $.Sites $.City}}
  - {name: reflector-{{$.City}}, dst_city: {{$.City}}, method: udp, address: {{.ReflectorAddr}}}
{{- end}}
{{- range $city := .Cities}}{{with index $.Sites $city}}
  - {name: web-{{$city | printf "%s"}}, dst_city: {{$city}}, method: http, address: {{.WebURL}}, expect_status: 200}
{{- end}}{{end}}
`))
