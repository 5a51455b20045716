// Command bantay-collector is the Bantay OpenTelemetry Collector
// distribution: OTLP in, city/carrier tagging, an embedded Prometheus TSDB
// with the Prometheus HTTP API, alerting, Loki events and the live NOC
// heatmap. Run it with --config; `bantay-collector components` lists what
// it includes.
package main

import (
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/bantay-noc/bantay/collector"
)

func main() {
	if err := collector.EnableFeatureGates(); err != nil {
		fmt.Fprintf(os.Stderr, "bantay-collector: %v\n", err)
		os.Exit(1)
	}
	cmd := otelcol.NewCommand(collector.Settings(nil))
	cmd.SilenceErrors = true // printed below, with the config files named
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "bantay-collector: %s%v\n", configFiles(os.Args[1:]), err)
		os.Exit(1)
	}
}

// configFiles names the --config values for error messages, so an operator
// with several collectors sees which file is wrong.
func configFiles(args []string) string {
	var files []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "--config" || a == "-config") && i+1 < len(args):
			files = append(files, args[i+1])
			i++
		case strings.HasPrefix(a, "--config="):
			files = append(files, strings.TrimPrefix(a, "--config="))
		}
	}
	if len(files) == 0 {
		return ""
	}
	return "config " + strings.Join(files, ", ") + ": "
}
