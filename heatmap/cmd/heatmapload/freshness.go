package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bantay-noc/bantay/internal/demo"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/probes/agent"
	"github.com/bantay-noc/bantay/probes/config"
)

// freshProbe is the demo probe whose identity the measuring agent takes
// over; freshCities are gazetteer cities no demo probe measures, so the
// cells Manila → freshCities hold only the stamped measurements.
const freshProbe = "mnl-01"

var freshCities = []string{"Quezon City", "Angeles", "Legazpi", "Cebu", "Iloilo", "Bacolod", "Tacloban", "Cagayan de Oro", "Zamboanga", "General Santos"}

// freshness measures probe measurement → websocket frame through the real
// pipeline: the demo (internal/demo: the collector with its production
// pipeline, otlp → citytag → deltatocumulative → tsdb + heatmap exporter,
// and the other demo probes running beside) and a real probe agent as
// mnl-01 whose HTTP targets are this process's stamp server. The server
// stamps the moment each measurement hits it; a /ws client watches the
// cells Manila → freshCities (one per target and uplink) and, when a cell's
// sample count reaches k, takes the frame's arrival minus the k-th stamp.
// It also reports arrival minus the cell's last_seen (the probe SDK's
// collection time, i.e. the export), the part after the export interval.
//
// Within one run the probe's export ticker and the hub's broadcast ticker
// keep a fixed phase, so export → frame is nearly one number per run; each
// run therefore starts the agent after a random delay of up to a second,
// and -runs repeats the whole thing (a new demo each time) and pools the
// samples.
func freshness(args []string) {
	fs := flag.NewFlagSet("freshness", flag.ExitOnError)
	interval := fs.Duration("interval", 5*time.Second, "probe interval = export interval = heatmap resolution")
	duration := fs.Duration("duration", time.Minute, "measure for this long per run (at most 10m: every sample must stay in the 15m window)")
	runs := fs.Int("runs", 5, "runs, each with its own demo and a random export phase (at most 20)")
	maxSamples := fs.Int("samples", 5000, "stop a run after this many delivered measurements")
	_ = fs.Parse(args)
	if *duration > 10*time.Minute || *interval < time.Second || *runs < 1 || *runs > 20 {
		log.Fatal("-duration must be at most 10m, -interval at least 1s, -runs 1..20")
	}
	var fresh, export lagHist
	for r := range *runs {
		fmt.Printf("run %d: ", r+1)
		freshRun(*interval, *duration, *maxSamples, &fresh, &export)
	}
	fmt.Printf("all %d runs, interval %v: measurement → frame p50=%dms p99=%dms max=%dms (p99 − interval = %dms) over %d; export → frame p50=%dms p99=%dms max=%dms over %d\n",
		*runs, *interval, fresh.quantile(0.5), fresh.quantile(0.99), fresh.max(), fresh.quantile(0.99)-(*interval).Milliseconds(), fresh.total(),
		export.quantile(0.5), export.quantile(0.99), export.max(), export.total())
}

// freshRun is one run: a demo, the stamping agent and the /ws client. It
// adds its samples to fresh and export and prints its own figures.
func freshRun(interval, duration time.Duration, maxSamples int, fresh, export *lagHist) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The stamp server: one target per city, the uplink known by the
	// source address the probe binds to.
	st := &stamps{byCell: map[string][]time.Time{}, carrier: map[string]string{}}
	var uplinks []config.Uplink
	for _, u := range netsim.DemoUplinks() {
		if u.Probe == freshProbe {
			uplinks = append(uplinks, config.Uplink{Name: u.Name, Carrier: u.Carrier, NetworkType: u.NetworkType, BindAddress: u.Addr.String()})
			st.carrier[u.Addr.String()] = u.Carrier
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	web := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = web.Serve(ln) }()
	defer web.Close()

	opts, err := demo.FreeLoopbackPorts()
	if err != nil {
		log.Fatal(err)
	}
	if opts.DataDir, err = os.MkdirTemp("", "heatmapload-freshness-"); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(opts.DataDir)
	opts.ProbeInterval, opts.Logger = interval, logger
	var probes *demo.Probes
	opts.Probes = func(p *demo.Probes) { probes = p }
	d, err := demo.Start(opts, 90*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if err := probes.Stop(freshProbe); err != nil {
		log.Fatal(err)
	}

	token, err := probes.Token(freshProbe) // the collector authenticates every probe
	if err != nil {
		log.Fatal(err)
	}
	cfg := &config.Config{
		Probe:     config.Probe{ID: freshProbe, City: "Manila", Environment: "bench"},
		Collector: config.Collector{Endpoint: opts.GRPCAddr, Protocol: "grpc", TLS: config.TLS{Insecure: true}, Token: token, ExportInterval: interval, Timeout: 5 * time.Second},
		Uplinks:   uplinks,
		Defaults:  config.Schedule{Interval: interval, Timeout: min(2*time.Second, interval*8/10)},
	}
	for i, c := range freshCities {
		cfg.Targets = append(cfg.Targets, config.Target{Name: "stamp-" + strconv.Itoa(i), DstCity: c, Method: "http",
			Address: "http://" + ln.Addr().String() + "/" + strconv.Itoa(i), ExpectStatus: http.StatusOK})
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+opts.HTTPAddr+"/ws?window=15m", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()
	time.Sleep(rand.N(time.Second)) // a random phase against the hub's ticks
	a, err := agent.New(cfg, logger)
	if err != nil {
		log.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(agentCtx) }()
	fmt.Printf("demo collector on %s; probe %s measuring %d targets on %d uplinks every %v; measuring for %v\n",
		opts.HTTPAddr, freshProbe, len(cfg.Targets), len(uplinks), interval, duration)

	var runFresh, runExport lagHist
	delivered, lastSeen := map[string]int{}, map[string]int64{}
	samples, ahead := 0, 0
	deadline := time.Now().Add(duration)
	_ = ws.SetReadDeadline(deadline)
	for samples < maxSamples {
		_, data, err := ws.ReadMessage()
		arrival := time.Now()
		if err != nil {
			break // the deadline, or the demo ended
		}
		var f struct {
			Type  string `json:"type"`
			Cells []struct {
				Src      string `json:"src_city"`
				Dst      string `json:"dst_city"`
				Carrier  string `json:"carrier"`
				Count    int    `json:"count"`
				LastSeen int64  `json:"last_seen"`
			} `json:"cells"`
		}
		if json.Unmarshal(data, &f) != nil || (f.Type != "delta" && f.Type != "snapshot") {
			continue
		}
		for _, c := range f.Cells {
			k := c.Dst + "|" + c.Carrier
			if c.Src != "Manila" || !st.known(k) {
				continue
			}
			if c.LastSeen > lastSeen[k] {
				if f.Type == "delta" && lastSeen[k] != 0 {
					ms := arrival.UnixMilli() - c.LastSeen
					export.add(ms)
					runExport.add(ms)
				}
				lastSeen[k] = c.LastSeen
			}
			ts := st.get(k)
			for ; delivered[k] < min(c.Count, len(ts)); delivered[k]++ {
				ms := arrival.Sub(ts[delivered[k]]).Milliseconds()
				fresh.add(ms)
				runFresh.add(ms)
				samples++
			}
			if c.Count > len(ts) {
				ahead++ // more samples than stamps: would mean a mismatch
			}
		}
	}
	stopAgent()
	<-agentDone
	if err := d.Stop(time.Minute); err != nil {
		log.Printf("demo: %v", err)
	}
	fmt.Printf("  measurements delivered=%d (stamped %d; not yet delivered at the end %d; count ahead of stamps %d)\n",
		samples, st.total(), st.total()-samples, ahead)
	fmt.Printf("  measurement → frame p50=%dms p99=%dms max=%dms; export → frame p50=%dms p99=%dms max=%dms over %d exports\n",
		runFresh.quantile(0.5), runFresh.quantile(0.99), runFresh.max(), runExport.quantile(0.5), runExport.quantile(0.99), runExport.max(), runExport.total())
}

// stamps records when each measurement reached the target, per cell
// ("dst_city|carrier").
type stamps struct {
	carrier map[string]string // bind address → carrier; read-only
	mu      sync.Mutex
	byCell  map[string][]time.Time
}

func (s *stamps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	carrier, ok := s.carrier[host]
	if err != nil || i < 0 || i >= len(freshCities) || !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	k := freshCities[i] + "|" + carrier
	s.byCell[k] = append(s.byCell[k], now)
	s.mu.Unlock()
	_, _ = w.Write([]byte("ok\n"))
}

func (s *stamps) known(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byCell[k]
	return ok
}

func (s *stamps) get(k string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byCell[k][:len(s.byCell[k]):len(s.byCell[k])]
}

func (s *stamps) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ts := range s.byCell {
		n += len(ts)
	}
	return n
}
