// Package config holds the shipped collector configuration (bantay.yaml and
// the Prometheus-format prometheus.yml it points at), embedded so that the
// demo generates its configuration from these very files: what a newcomer
// runs is what a deployment runs, with only addresses, paths and the probe
// registry replaced.
package config

import _ "embed"

// Collector is bantay.yaml, the production-shaped collector configuration.
//
//go:embed bantay.yaml
var Collector string

// Prometheus is prometheus.yml: rules, Alertmanagers and self-scrape.
//
//go:embed prometheus.yml
var Prometheus string
