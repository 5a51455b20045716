// Package collector assembles the Bantay OpenTelemetry Collector
// distribution: the upstream components it includes, Bantay's own, and the
// settings for otelcol.
package collector

import (
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/deltatocumulativeprocessor"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/bantay-noc/bantay/collector/connector/failureeventsconnector"
	"github.com/bantay-noc/bantay/collector/extension/bantayextension"
	"github.com/bantay-noc/bantay/collector/extension/probeauthextension"
	"github.com/bantay-noc/bantay/collector/extension/refusalsextension"
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

// Components returns every component factory the distribution includes,
// with the module (path and version, read from the binary's build info)
// each comes from, as `bantay-collector components` reports.
func Components() (otelcol.Factories, error) {
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	var err error
	if f.Receivers, f.ReceiverModules, err = factories(
		otlpreceiver.NewFactory,
		bantayeventsreceiver.NewFactory,
	); err != nil {
		return f, err
	}
	if f.Processors, f.ProcessorModules, err = factories(
		memorylimiterprocessor.NewFactory,
		citytagprocessor.NewFactory,
		deltatocumulativeprocessor.NewFactory,
	); err != nil {
		return f, err
	}
	if f.Exporters, f.ExporterModules, err = factories(
		tsdbexporter.NewFactory,
		heatmapexporter.NewFactory,
		lokiexporter.NewFactory,
	); err != nil {
		return f, err
	}
	if f.Connectors, f.ConnectorModules, err = factories(
		failureeventsconnector.NewFactory,
	); err != nil {
		return f, err
	}
	if f.Extensions, f.ExtensionModules, err = factories(
		bantayextension.NewFactory,
		probeauthextension.NewFactory,
		refusalsextension.NewFactory,
		healthcheckextension.NewFactory,
		// Go's profiles of the running collector (the hot paths of
		// docs/BENCHMARKS.md); it starts only when a config names it under
		// service.extensions, and has no authentication: keep it on loopback.
		pprofextension.NewFactory,
	); err != nil {
		return f, err
	}
	return f, nil
}

// factories makes the factory map of one kind and, for each type, the
// module its NewFactory comes from. The module is found from the function
// itself, so no path or version is written down twice.
func factories[F component.Factory](news ...func() F) (map[component.Type]F, map[component.Type]string, error) {
	made := make([]F, 0, len(news))
	modules := make(map[component.Type]string, len(news))
	for _, newFactory := range news {
		f := newFactory()
		made = append(made, f)
		modules[f.Type()] = moduleOf(newFactory)
	}
	m, err := otelcol.MakeFactoryMap(made...)
	return m, modules, err
}

// moduleOf names the Go package fn is defined in and the version of the
// module that holds it, from the build info ("(devel)" for this module
// when it is built from a work tree).
func moduleOf(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name() // "path/to/pkg.NewFactory"
	pkg := name[:strings.LastIndex(name, ".")]
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return pkg
	}
	best, version := "", ""
	for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if (pkg == m.Path || strings.HasPrefix(pkg, m.Path+"/")) && len(m.Path) > len(best) {
			best, version = m.Path, m.Version
			if m.Replace != nil {
				version = m.Replace.Version
			}
		}
	}
	if version == "" {
		return pkg
	}
	return pkg + " " + version
}

// Settings returns the otelcol settings for the distribution reading its
// configuration from the given URIs (file paths, file:, env:, yaml:).
func Settings(configURIs []string) otelcol.CollectorSettings {
	providers, providerModules := configProviders()
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "bantay-collector",
			Description: "Bantay: latency observability for NOCs (an OpenTelemetry Collector distribution)",
			Version:     Version,
		},
		Factories: Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs:              configURIs,
				ProviderFactories: providers,
				DefaultScheme:     "file",
			},
		},
		ProviderModules: providerModules,
	}
}

// configProviders are the confmap providers (file, env, yaml) with the
// module each comes from.
func configProviders() ([]confmap.ProviderFactory, map[string]string) {
	var factories []confmap.ProviderFactory
	modules := map[string]string{}
	for _, newProvider := range []func() confmap.ProviderFactory{fileprovider.NewFactory, envprovider.NewFactory, yamlprovider.NewFactory} {
		f := newProvider()
		factories = append(factories, f)
		modules[f.Create(confmap.ProviderSettings{}).Scheme()] = moduleOf(newProvider)
	}
	return factories, modules
}
