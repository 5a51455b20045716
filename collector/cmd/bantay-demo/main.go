// Command bantay-demo runs the whole Bantay system on this machine: the
// collector with its embedded store, three probes (Manila, Baguio, Davao;
// two carriers each) and simulated targets with realistic delay, jitter and
// loss. Open http://127.0.0.1:8080/ for the live heatmap; the Prometheus API
// is at http://127.0.0.1:8080/api/v1/. Ctrl-C stops it cleanly.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bantay-noc/bantay/internal/demo"
	"github.com/bantay-noc/bantay/internal/demo/netsim"
)

func main() {
	o := demo.Defaults()
	flag.StringVar(&o.DataDir, "data", o.DataDir, "directory for the TSDB and generated configs")
	flag.StringVar(&o.HTTPAddr, "http", o.HTTPAddr, "web page, /ws and Prometheus API listener")
	flag.StringVar(&o.GRPCAddr, "otlp-grpc", o.GRPCAddr, "OTLP/gRPC listener")
	flag.StringVar(&o.OTLPHTTPAddr, "otlp-http", o.OTLPHTTPAddr, "OTLP/HTTP listener")
	flag.IntVar(&o.TelemetryPort, "telemetry-port", o.TelemetryPort, "collector self-telemetry port on 127.0.0.1")
	flag.StringVar(&o.HealthAddr, "health", o.HealthAddr, "health_check listener")
	flag.DurationVar(&o.ProbeInterval, "interval", o.ProbeInterval, "probe and export interval")
	flag.StringVar(&o.LokiURL, "loki", "", "push events to this Loki (base URL, or a full push URL ending in /push)")
	flag.StringVar(&o.AlertmanagerURL, "alertmanager", "", "send alerts from the shipped rules to this Alertmanager (http://host:port)")
	flag.StringVar(&o.Histograms, "histograms", "", "the probes' recording.histograms: classic (default), exponential or both\n(both: the drill-down's median from native histograms, docs/probe.md)")
	incident := flag.String("incident", "", "stage an incident on the simulated network, e.g. 'Davao/Globe: +80ms, 5% loss after 60s for 5m'\n(grammar: docs/demo-network.md); the page's \"Stage incident\" button stages it again")
	flag.Parse()
	if *incident != "" {
		inc, err := netsim.ParseIncident(*incident)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bantay-demo: -incident:", err)
			os.Exit(2)
		}
		o.Incident = &inc
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := demo.Run(ctx, o, func() {
		fmt.Printf(`
Bantay demo is running.
  Heatmap (NOC page):   http://%[1]s/
  Prometheus API:       http://%[1]s/api/v1/query?query=...
  Try:  curl -s 'http://%[1]s/api/v1/query' --data-urlencode 'query=histogram_quantile(0.5, sum by (src_city, dst_city, carrier, le) (rate(network_latency_milliseconds_bucket{phase=""}[1m])))'
Data appears within %[2]s. The page's "Stage incident" button degrades part of the
simulated network (-incident to choose what; docs/demo-network.md). Ctrl-C stops everything.
`, o.HTTPAddr, 2*o.ProbeInterval)
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "bantay-demo:", err)
		os.Exit(1)
	}
}
