package heatmapexporter

import (
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config configures the heatmap exporter. The heatmap itself (windows,
// websocket settings) is configured on the extension that owns it.
type Config struct {
	// Extension names the extension that provides the heatmap, i.e. one
	// implementing `Heatmap() *heatmap.Heatmap` (Bantay's "bantay" extension).
	Extension component.ID `mapstructure:"extension"`

	// QueueConfig is exporterhelper's sending queue, which takes the
	// heatmap off the acknowledgement path: the pipeline hands a batch over
	// and goes on to answer the probe, and one consumer feeds the heatmap in
	// order. A batch that does not fit is dropped and counted
	// (otelcol_exporter_enqueue_failed_metric_points{exporter="heatmap"});
	// the probe's answer is the store's, whatever the heatmap does.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`

	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks that an extension is named and that the queue keeps the
// heatmap off the acknowledgement path and its points in order.
func (c *Config) Validate() error {
	var errs []error
	if c.Extension.Type().String() == "" {
		errs = append(errs, errors.New("extension: must name the extension that provides the heatmap (e.g. bantay)"))
	}
	if !c.QueueConfig.HasValue() {
		errs = append(errs, errors.New("sending_queue: must be enabled, so that acknowledgements never wait for the heatmap"))
		return errors.Join(errs...)
	}
	q := c.QueueConfig.Get()
	if q.BlockOnOverflow {
		errs = append(errs, errors.New("sending_queue::block_on_overflow: must be false, a full queue drops heatmap points (counted) rather than holding back acknowledgements"))
	}
	if q.WaitForResult {
		errs = append(errs, errors.New("sending_queue::wait_for_result: must be false, acknowledgements would wait for the heatmap"))
	}
	if q.NumConsumers != 1 {
		// The heatmap derives deltas per cumulative stream: two consumers
		// could apply a stream's points out of order.
		errs = append(errs, errors.New("sending_queue::num_consumers: must be 1, the heatmap needs each stream's points in order"))
	}
	if q.StorageID != nil {
		errs = append(errs, errors.New("sending_queue::storage: must be empty, the heatmap is a live view that a restart refills from the store"))
	}
	return errors.Join(errs...)
}
