// Package victorialogs is a test harness around VictoriaLogs (Apache-2.0),
// an independently written store that accepts Grafana Loki's push protocol at
// /insert/loki/api/v1/push. Bantay's Loki exporter is tested against it
// because Loki's own server is AGPL and must not be used, not even in tests.
//
// The harness builds VictoriaLogs from its Go module once per machine
// (internal/harness/modbuild) and caches the binary under the Go build
// cache, outside the repository.
package victorialogs

import (
	"testing"

	"github.com/bantay-noc/bantay/internal/harness/modbuild"
)

const (
	// Module is the Go module VictoriaLogs is built from.
	Module = "github.com/VictoriaMetrics/VictoriaLogs"
	// Version is the pinned VictoriaLogs release the harness builds.
	Version = "v1.52.1"
	// BinaryEnv, when set, names a prebuilt victoria-logs binary to use
	// instead of building one (for CI images that ship it).
	BinaryEnv = "BANTAY_VICTORIALOGS_BIN"
)

var peer = &modbuild.Peer{
	Name: "victoria-logs", Module: Module, Version: Version, Package: "./app/victoria-logs",
	Skip:      []string{"docs", "dashboards", "deployment", "benchmarks", "apptest"},
	BinaryEnv: BinaryEnv,
}

// Binary returns the path of a victoria-logs binary, building it on first
// use. When it cannot be had it calls testenv.Unavailable: a skip on a
// developer machine, a failure under CI.
func Binary(t testing.TB) string {
	t.Helper()
	return peer.Binary(t)
}
