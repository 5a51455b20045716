// Package promtest is test machinery for checking Bantay against the
// Prometheus ecosystem: it expands Grafana template variables the way
// Grafana's Prometheus data source does, reads the queries out of dashboard
// JSON, starts the real Prometheus and Alertmanager binaries (Debian
// packages) on 127.0.0.1, feeds Prometheus through its remote-write
// receiver, and talks to any Prometheus-compatible HTTP API (Prometheus or
// Bantay) with a small client that returns parsed results.
//
// It is meant for tests only; nothing in the collector imports it.
package promtest
