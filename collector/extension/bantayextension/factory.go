// Package bantayextension implements the `bantay` extension: the one
// component that owns Bantay's state. It runs the embedded Prometheus TSDB,
// the PromQL engine and the Prometheus HTTP API, the live heatmap with its
// websocket feed, and the NOC web page, all on one HTTP listener. Exporters
// (tsdb, heatmap) find it through the collector host and stay thin.
package bantayextension

//go:generate mdatagen metadata.yaml

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/extension"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/internal/store"
	"github.com/bantay-noc/bantay/internal/webauth"
)

// NewFactory returns the bantay extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = "127.0.0.1:8080"
	// Range queries may run up to the query timeout; the websocket upgrade
	// clears deadlines for its own connections.
	srv.WriteTimeout = 3 * time.Minute
	def := store.DefaultConfig("./data")
	return &Config{
		ServerConfig: srv,
		Storage: StorageConfig{
			Path:                 def.Dir,
			Retention:            def.Retention,
			OutOfOrderWindow:     def.OutOfOrderWindow,
			MaxConcurrentAppends: def.MaxConcurrentAppends,
			AppendWait:           def.AppendWait,
			RetryAfter:           def.RetryAfter,
			RecoveryInterval:     def.RecoveryInterval,
			MaxExemplars:         def.MaxExemplars,
			BlockDuration:        def.BlockDuration,
		},
		Query: QueryConfig{
			LookbackDelta: def.LookbackDelta,
			Timeout:       def.QueryTimeout,
			MaxSamples:    def.MaxSamples,
		},
		RemoteRead: RemoteReadConfig{
			SampleLimit:      def.RemoteRead.SampleLimit,
			ConcurrencyLimit: def.RemoteRead.ConcurrencyLimit,
			MaxBytesInFrame:  def.RemoteRead.MaxBytesInFrame,
		},
		Heatmap:      heatmap.DefaultConfig(),
		Access:       webauth.DefaultConfig(),
		EventsBuffer: 1024,
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newServer(set, cfg.(*Config)), nil
}
