// Command bantay-loadgen simulates a fleet of Bantay probes against a
// collector and measures what it acknowledged, what became queryable and
// how fresh it was (docs/BENCHMARKS.md, "Load tool"):
//
//	bantay-loadgen setup -probes 25 -targets 5 -uplinks 1 -out fleet/
//	bantay-loadgen run -probes 25 -targets 5 -uplinks 1 -token-dir fleet/tokens -rate 10000 -duration 30s \
//	    -query-url http://127.0.0.1:8080 -query-token "$(cat reader.token)" -ws-url ws://127.0.0.1:8080/ws
//	bantay-loadgen bench -rates 5000,10000,20000,flat -step 20s
//	bantay-loadgen soak -rate 5000 -duration 30m -every 30s -json soak.json
//	bantay-loadgen query -probes 25 -targets 10 -dir /var/tmp/querybench
//	bantay-loadgen restart -probes 658 -targets 20 -uplinks 2 -dir /var/tmp/restart
//
// setup writes the registry, token hashes and tokens a collector needs for
// the fleet; run sends its load; bench starts Bantay's collector and the
// upstream peer and runs the same steps against each; soak starts Bantay's
// collector and runs one long load, sampling its RSS, goroutines, open
// files and store every -every; query writes days of history as TSDB
// blocks and times every dashboard and rule expression on Bantay and on
// Prometheus over it; restart times a collector's restart (killed, and
// stopped cleanly) against Prometheus's. collector runs
// Bantay's collector in this process with a CPU profile (bench -cpuprofile).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bantay-loadgen:", err)
		os.Exit(1)
	}
}

const usageText = `usage: bantay-loadgen setup|run|bench|soak|query|restart|collector [flags]; bantay-loadgen <command> -h for its flags`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageText)
		return flag.ErrHelp
	}
	switch args[0] {
	case "setup":
		return setupCmd(args[1:], stdout, stderr)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "soak":
		return soakCmd(ctx, args[1:], stdout, stderr)
	case "collector":
		return collectorCmd(ctx, args[1:], stderr)
	case "query":
		return queryCmd(ctx, args[1:], stdout, stderr)
	case "restart":
		return restartCmd(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s\n", args[0], usageText)
	return flag.ErrHelp
}
