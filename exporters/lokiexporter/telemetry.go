package lokiexporter

import (
	"context"
	"strconv"
	"time"

	"github.com/bantay-noc/bantay/internal/logthrottle"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
)

const scopeName = "github.com/bantay-noc/bantay/exporters/lokiexporter"

// Metric names (Prometheus adds _total to counters). exporterhelper's own
// otelcol_exporter_* metrics cover sent, failed and dropped records.
const (
	metricSuppressed   = "bantay_loki_suppressed_events"
	metricInvalidLabel = "bantay_loki_invalid_label_values"
	metricRejected     = "bantay_loki_rejected_pushes"
)

// telemetry is the exporter's own metrics and its throttled warnings.
type telemetry struct {
	attrs       metric.MeasurementOption
	suppressedC metric.Int64Counter
	invalidC    metric.Int64Counter
	rejectedC   metric.Int64Counter
	warnings    *logthrottle.Logger // at most once a minute per label and reason
}

func newTelemetry(set exporter.Settings) (*telemetry, error) {
	m := set.MeterProvider.Meter(scopeName)
	t := &telemetry{
		attrs:    metric.WithAttributes(attribute.String("exporter", set.ID.String())),
		warnings: logthrottle.New(set.Logger, time.Minute),
	}
	var err error
	if t.suppressedC, err = m.Int64Counter(metricSuppressed,
		metric.WithDescription("Events refused by the per-source rate limit (each source's are summarised in one entry)."),
		metric.WithUnit("{event}")); err != nil {
		return nil, err
	}
	if t.invalidC, err = m.Int64Counter(metricInvalidLabel,
		metric.WithDescription("Attribute values not usable as Loki label values (kept in structured metadata instead), by label and reason."),
		metric.WithUnit("{value}")); err != nil {
		return nil, err
	}
	if t.rejectedC, err = m.Int64Counter(metricRejected,
		metric.WithDescription("Push requests Loki refused permanently (4xx other than 429), by status code; their events are dropped."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *telemetry) suppressed(ctx context.Context, n int64) {
	t.suppressedC.Add(ctx, n, t.attrs)
}

func (t *telemetry) rejected(ctx context.Context, status int) {
	t.rejectedC.Add(ctx, 1, t.attrs, metric.WithAttributes(attribute.String("status", strconv.Itoa(status))))
}

// invalidLabel counts a refused label value and warns at most once a
// minute per label and reason, so bad input is visible without flooding
// the collector's log.
func (t *telemetry) invalidLabel(label, reason string) {
	t.invalidC.Add(context.Background(), 1, t.attrs,
		metric.WithAttributes(attribute.String("label", label), attribute.String("reason", reason)))
	t.warnings.Warn(label+"/"+reason, "Attribute value not usable as a Loki label; sent as structured metadata only",
		zap.String("label", label), zap.String("reason", reason),
		zap.Int("max_len", maxLabelValueLen))
}
