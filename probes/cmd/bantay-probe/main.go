// Command bantay-probe is Bantay's edge probe: it measures latency from its
// site over each uplink to a list of targets and sends the results to a
// Bantay collector over OTLP. It also ships the UDP echo reflector that
// other probes measure against.
//
//	bantay-probe run --config probe.yaml
//	bantay-probe validate --config probe.yaml
//	bantay-probe reflect --listen 127.0.0.1:7001
//	bantay-probe version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"go.opentelemetry.io/otel"

	"github.com/bantay-noc/bantay/probes/agent"
	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/reflector"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: bantay-probe <command> [flags]

commands:
  run --config FILE        measure and send to the collector until SIGINT/SIGTERM
  validate --config FILE   check a config file and exit
  reflect --listen ADDR    answer UDP echo probes from other sites (e.g. 0.0.0.0:7001)
  measure [flags] TARGET   probe targets now, without a collector (measure --help)
  version                  print the version

common flags: --log-level debug|info|warn|error, --log-format text|json
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	if cmd == "measure" {
		return measure(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("bantay-probe "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := fs.String("log-level", "info", "minimum log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	var configPath, listen *string
	switch cmd {
	case "run", "validate":
		configPath = fs.String("config", "", "path of the probe config file (YAML)")
	case "reflect":
		listen = fs.String("listen", "127.0.0.1:7001", "UDP address to answer echo probes on")
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "bantay-probe", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "bantay-probe: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bantay-probe %s: unexpected arguments %q\n", cmd, fs.Args())
		return 2
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "bantay-probe:", err)
		return 2
	}

	switch cmd {
	case "validate", "run":
		if *configPath == "" {
			fmt.Fprintf(stderr, "bantay-probe %s: --config is required\n", cmd)
			return 2
		}
		cfg, err := config.Load(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if cmd == "validate" {
			mesh := ""
			if cfg.Mesh.Enabled {
				mesh = ", and the other sites from " + cfg.Mesh.Collector
			}
			fmt.Fprintf(stdout, "%s: ok (probe %s in %s, %d uplinks, %d targets%s)\n",
				*configPath, cfg.Probe.ID, cfg.Probe.City, len(cfg.Uplinks), len(cfg.Targets), mesh)
			return 0
		}
		// The SDK reports internal errors through a process-wide handler
		// that prints with the standard logger; send them to our log.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("opentelemetry sdk", "error", err)
		}))
		a, err := agent.New(cfg, logger)
		if err != nil {
			fmt.Fprintln(stderr, "bantay-probe:", err)
			return 1
		}
		if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
			a.LimitMemory()
		}
		if err := a.Run(ctx); err != nil {
			msg := "stopped with undelivered data"
			if cfg.Queue.Dir == "" {
				msg += "; set queue.dir to keep undelivered exports on disk across a restart"
			}
			logger.Error(msg, "error", err)
			return 1
		}
		return 0
	default: // reflect
		r, err := reflector.Listen(*listen, logger)
		if err != nil {
			fmt.Fprintln(stderr, "bantay-probe reflect:", err)
			return 1
		}
		logger.Info("reflector listening", "address", r.Addr().String(), "version", versionString())
		err = r.Serve(ctx)
		s := r.Stats()
		logger.Info("reflector stopped", "received", s.Received, "reflected", s.Reflected, "dropped", s.Dropped, "send_errors", s.SendErrors)
		if err != nil {
			fmt.Fprintln(stderr, "bantay-probe reflect:", err)
			return 1
		}
		return 0
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, errors.New("--log-format " + format + ": want text or json")
	}
}

// versionString adds the VCS revision Go stamps into the binary, if any.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return version + " (" + s.Value[:12] + ")"
		}
	}
	return version
}
