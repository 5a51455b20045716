package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/bantay-noc/bantay/collector"
)

// collectorCmd runs bantay-collector's distribution (the same
// collector.Settings) in this process under the CPU profiler until SIGTERM
// or SIGINT, then writes the profile: the distribution has no pprof
// extension, and a profile of the separate process is what shows where the
// collector's time goes.
func collectorCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("cpuprofile", "", "write the CPU profile here at exit (required)")
	config := fs.String("config", "", "the collector's configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile == "" || *config == "" {
		return errors.New("collector: -cpuprofile and -config are required")
	}
	out, err := os.Create(*profile)
	if err != nil {
		return fmt.Errorf("-cpuprofile: %w", err)
	}
	defer out.Close()
	if err := collector.EnableFeatureGates(); err != nil {
		return err
	}
	set := collector.Settings([]string{*config})
	set.DisableGracefulShutdown = true // ctx carries the signals
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	stop := context.AfterFunc(ctx, col.Shutdown)
	defer stop()
	return col.Run(context.Background())
}
