package lokiexporter

import (
	"context"
	"strconv"
	"time"

	"github.com/bantay-noc/bantay/exporters/lokiexporter/internal/metadata"
	"github.com/bantay-noc/bantay/internal/logthrottle"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
)

// telemetry is the exporter's own metrics (metadata.yaml; exporterhelper's
// otelcol_exporter_* cover sent, failed and dropped records) and its
// throttled warnings.
type telemetry struct {
	attrs       metric.MeasurementOption
	suppressedC metric.Int64Counter
	invalidC    metric.Int64Counter
	rejectedC   metric.Int64Counter
	queueFullC  metric.Int64Counter
	warnings    *logthrottle.Logger // at most once a minute per label and reason
}

func newTelemetry(set exporter.Settings) (*telemetry, error) {
	t := &telemetry{
		attrs:    metric.WithAttributes(attribute.String("exporter", set.ID.String())),
		warnings: logthrottle.New(set.Logger, time.Minute),
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	t.suppressedC, t.invalidC, t.rejectedC = tel.LokiSuppressedEvents, tel.LokiInvalidLabelValues, tel.LokiRejectedPushes
	t.queueFullC = tel.LokiQueueFullEvents
	return t, nil
}

func (t *telemetry) suppressed(ctx context.Context, n int64) {
	t.suppressedC.Add(ctx, n, t.attrs)
}

func (t *telemetry) queueFull(ctx context.Context, n int64) {
	t.queueFullC.Add(ctx, n, t.attrs)
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
