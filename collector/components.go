// Package collector assembles the Bantay OpenTelemetry Collector
// distribution: the upstream components it includes, Bantay's own, and the
// settings for otelcol.
package collector

import (
	"fmt"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/deltatocumulativeprocessor"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector"
	"github.com/bantay-noc/bantay/collector/extension/bantayextension"
	"github.com/bantay-noc/bantay/collector/extension/probeauthextension"
	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor"
	"github.com/bantay-noc/bantay/collector/receiver/bantayeventsreceiver"
	"github.com/bantay-noc/bantay/exporters/heatmapexporter"
	"github.com/bantay-noc/bantay/exporters/lokiexporter"
	"github.com/bantay-noc/bantay/exporters/tsdbexporter"
)

// Version is the distribution's version, reported by --version and in the
// collector's own telemetry.
var Version = "0.1.0-dev"

// defaultFeatureGates are the collector feature gates this distribution
// turns on. With service.partialReload, a SIGHUP whose configuration is
// unchanged leaves the pipelines running: without it the collector shuts
// down and restarts every component on SIGHUP, so the rules reload a
// Prometheus operator asks for with `kill -HUP` would also close the store,
// the listeners and every wall screen's websocket. (Its receivers phase is
// Beta and on by default; it is named so that turning it off is a choice.)
// `--feature-gates=-service.partialReload` restores the upstream behaviour.
var defaultFeatureGates = []string{"service.partialReload", "service.partialReloadReceivers"}

// EnableFeatureGates turns on the distribution's default feature gates in
// the global registry. Call it before otelcol parses its flags, so that
// --feature-gates still has the last word.
func EnableFeatureGates() error {
	for _, id := range defaultFeatureGates {
		if err := featuregate.GlobalRegistry().Set(id, true); err != nil {
			return fmt.Errorf("feature gate %s: %w", id, err)
		}
	}
	return nil
}

// Components returns every component factory the distribution includes.
func Components() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
		bantayeventsreceiver.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		memorylimiterprocessor.NewFactory(),
		citytagprocessor.NewFactory(),
		deltatocumulativeprocessor.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		tsdbexporter.NewFactory(),
		heatmapexporter.NewFactory(),
		lokiexporter.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Connectors, err = otelcol.MakeFactoryMap[connector.Factory](
		failureeventsconnector.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		bantayextension.NewFactory(),
		probeauthextension.NewFactory(),
		healthcheckextension.NewFactory(),
	); err != nil {
		return f, err
	}
	const (
		core    = "go.opentelemetry.io/collector/"
		contrib = "github.com/open-telemetry/opentelemetry-collector-contrib/"
		bantay  = "github.com/bantay-noc/bantay/"
	)
	f.ReceiverModules = map[component.Type]string{
		otlpreceiver.NewFactory().Type():         core + "receiver/otlpreceiver v0.165.0",
		bantayeventsreceiver.NewFactory().Type(): bantay + "collector/receiver/bantayeventsreceiver",
	}
	f.ConnectorModules = map[component.Type]string{
		failureeventsconnector.NewFactory().Type(): bantay + "collector/connector/failureeventsconnector",
	}
	f.ProcessorModules = map[component.Type]string{
		memorylimiterprocessor.NewFactory().Type():     core + "processor/memorylimiterprocessor v0.165.0",
		citytagprocessor.NewFactory().Type():           bantay + "collector/processor/citytagprocessor",
		deltatocumulativeprocessor.NewFactory().Type(): contrib + "processor/deltatocumulativeprocessor v0.165.0",
	}
	f.ExporterModules = map[component.Type]string{
		tsdbexporter.NewFactory().Type():    bantay + "exporters/tsdbexporter",
		heatmapexporter.NewFactory().Type(): bantay + "exporters/heatmapexporter",
		lokiexporter.NewFactory().Type():    bantay + "exporters/lokiexporter",
	}
	f.ExtensionModules = map[component.Type]string{
		bantayextension.NewFactory().Type():      bantay + "collector/extension/bantayextension",
		healthcheckextension.NewFactory().Type(): contrib + "extension/healthcheckextension v0.165.0",
	}
	return f, nil
}

// Settings returns the otelcol settings for the distribution reading its
// configuration from the given URIs (file paths, file:, env:, yaml:).
func Settings(configURIs []string) otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "bantay-collector",
			Description: "Bantay: latency observability for NOCs (an OpenTelemetry Collector distribution)",
			Version:     Version,
		},
		Factories: Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs: configURIs,
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				DefaultScheme: "file",
			},
		},
	}
}
