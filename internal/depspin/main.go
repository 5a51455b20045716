// Package depspin keeps every third-party module the design builds on in go.mod while the
// packages that import them are being written in parallel. Remove once each import has a real user.
package main

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/golang/snappy"
	_ "github.com/gorilla/websocket"
	_ "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	_ "github.com/grafana/loki/pkg/push"
	_ "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	_ "github.com/open-telemetry/opentelemetry-collector-contrib/processor/deltatocumulativeprocessor"
	_ "github.com/prometheus/prometheus/notifier"
	_ "github.com/prometheus/prometheus/promql"
	_ "github.com/prometheus/prometheus/rules"
	_ "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	_ "github.com/prometheus/prometheus/tsdb"
	_ "github.com/prometheus/prometheus/web/api/v1"
	_ "go.opentelemetry.io/collector/confmap/provider/envprovider"
	_ "go.opentelemetry.io/collector/confmap/provider/fileprovider"
	_ "go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	_ "go.opentelemetry.io/collector/exporter/exporterhelper"
	_ "go.opentelemetry.io/collector/otelcol"
	_ "go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	_ "go.opentelemetry.io/collector/processor/processorhelper"
	_ "go.opentelemetry.io/collector/receiver/otlpreceiver"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	_ "go.opentelemetry.io/otel/sdk/metric"
	_ "go.yaml.in/yaml/v3"
)

func main() {}
