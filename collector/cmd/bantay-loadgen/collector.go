package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/bantay-noc/bantay/collector"
)

// collectorCmd runs bantay-collector's distribution (the same
// collector.Settings) in this process until SIGTERM or SIGINT, under the
// CPU profiler, and/or writing a heap profile when the signal comes (before
// the collector shuts down, so it holds the store's head as it was under
// load): the distribution has no pprof extension, and a profile of the
// separate process is what shows where the collector's time and memory go.
func collectorCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("cpuprofile", "", "write the CPU profile here at exit")
	memProfile := fs.String("memprofile", "", "write a heap profile (in-use and allocated) here when stopped, before the collector shuts down")
	config := fs.String("config", "", "the collector's configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile == "" && *memProfile == "" || *config == "" {
		return errors.New("collector: -config and at least one of -cpuprofile, -memprofile are required")
	}
	if err := collector.EnableFeatureGates(); err != nil {
		return err
	}
	set := collector.Settings([]string{*config})
	set.DisableGracefulShutdown = true // ctx carries the signals
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return err
	}
	if *profile != "" {
		out, err := os.Create(*profile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var heapErr error
	stop := context.AfterFunc(ctx, func() {
		if *memProfile != "" {
			heapErr = writeHeapProfile(*memProfile)
		}
		col.Shutdown()
	})
	defer stop()
	if err := col.Run(context.Background()); err != nil {
		return err
	}
	return heapErr
}

// writeHeapProfile writes the heap profile after a collection, so that its
// in-use figures are the live heap.
func writeHeapProfile(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
		out.Close()
		return fmt.Errorf("-memprofile: %w", err)
	}
	return out.Close()
}
