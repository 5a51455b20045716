// Command bantay-collector is the Bantay OpenTelemetry Collector
// distribution: OTLP in, city/carrier tagging, an embedded Prometheus TSDB
// with the Prometheus HTTP API, alerting, Loki events and the live NOC
// heatmap. Run it with --config; `bantay-collector components` lists what
// it includes.
package main

import (
	"fmt"
	"os"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/bantay-noc/bantay/collector"
)

func main() {
	if err := otelcol.NewCommand(collector.Settings(nil)).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
