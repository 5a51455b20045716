package lokiexporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
)

// maxErrorBody bounds how much of a refusing response goes into the error.
const maxErrorBody = 1024

// pusher sends batches of log records to a Loki push endpoint. It is the
// function behind exporterhelper's queue and retry; it does one attempt
// and says whether another could succeed.
type pusher struct {
	cfg       *Config
	set       exporter.Settings
	url       string
	userAgent string
	conv      *converter
	tel       *telemetry
	now       func() time.Time

	client *http.Client
}

func newPusher(cfg *Config, set exporter.Settings, tel *telemetry) (*pusher, error) {
	u, err := pushURL(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	return &pusher{
		cfg:       cfg,
		set:       set,
		url:       u,
		userAgent: fmt.Sprintf("bantay-loki-exporter/%s", set.BuildInfo.Version),
		conv:      newConverter(cfg.Labels, tel.invalidLabel),
		tel:       tel,
		now:       time.Now,
	}, nil
}

func (p *pusher) start(ctx context.Context, host component.Host) error {
	client, err := p.cfg.ClientConfig.ToClient(ctx, host.GetExtensions(), p.set.TelemetrySettings)
	if err != nil {
		return fmt.Errorf("loki exporter: create HTTP client: %w", err)
	}
	p.client = client
	return nil
}

// push is exporterhelper's ConsumeLogsFunc: one push request per batch.
func (p *pusher) push(ctx context.Context, ld plog.Logs) error {
	streams := p.conv.convert(ld, p.now())
	if len(streams) == 0 {
		return nil
	}
	req := push.PushRequest{Streams: streams}
	raw, err := req.Marshal()
	if err != nil {
		// Nothing a retry could change.
		return consumererror.NewPermanent(fmt.Errorf("encode push request: %w", err))
	}
	body := snappy.Encode(nil, raw)

	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("build push request: %w", err))
	}
	// Loki's protobuf push body is snappy-compressed without a
	// Content-Encoding header; that is the protocol, as Promtail and
	// Grafana Alloy send it.
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("User-Agent", p.userAgent)
	if p.cfg.TenantID != "" {
		httpReq.Header.Set("X-Scope-OrgID", p.cfg.TenantID)
	}
	switch {
	case p.cfg.BasicAuth.Username != "":
		httpReq.SetBasicAuth(p.cfg.BasicAuth.Username, string(p.cfg.BasicAuth.Password))
	case p.cfg.BearerToken != "":
		httpReq.Header.Set("Authorization", "Bearer "+string(p.cfg.BearerToken))
	}

	resp, err := p.client.Do(httpReq)
	if err != nil {
		// Network errors (refused, reset, timeout) are transient.
		return fmt.Errorf("push to %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
		return nil
	}
	return p.classify(ctx, resp)
}

// classify turns a refusing response into an error exporterhelper
// understands: 429 and 5xx are retried (honouring Retry-After), any other
// status is permanent, because sending the same batch again cannot make
// Loki accept it (bad labels, entries too old, limits); the response body
// says which, so it goes into the error.
func (p *pusher) classify(ctx context.Context, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
	err := fmt.Errorf("push to %s: HTTP %d: %s", p.url, resp.StatusCode, strings.TrimSpace(string(msg)))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), p.now()); ok {
			return exporterhelper.NewThrottleRetry(err, d)
		}
		return err
	}
	p.tel.rejected(ctx, resp.StatusCode)
	return consumererror.NewPermanent(err)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// lokiExporter is the component: the rate limiter in front of
// exporterhelper's bounded queue, so that suppressed events never take
// queue space, and the summaries of what was suppressed.
type lokiExporter struct {
	exporter.Logs // exporterhelper: queue → retry → pusher

	logger  *zap.Logger
	limiter *limiter // nil when rate limiting is off
	keyAttr string
	// summaryAttrs are the label attributes copied onto summaries.
	summaryAttrs []string
	// queueEvents is the queue's capacity when it counts events (its
	// sizer is items), else 0: offer splits a batch only then.
	queueEvents int64
	tel         *telemetry
	now         func() time.Time

	stop chan struct{}
	done sync.WaitGroup
}

// Start starts exporterhelper (and with it the HTTP client) and the
// periodic summary of suppressed events.
func (e *lokiExporter) Start(ctx context.Context, host component.Host) error {
	if err := e.Logs.Start(ctx, host); err != nil {
		return err
	}
	if e.limiter != nil {
		e.stop = make(chan struct{})
		e.done.Add(1)
		go e.summarise()
	}
	return nil
}

// Shutdown sends the pending summaries, then drains the queue.
func (e *lokiExporter) Shutdown(ctx context.Context) error {
	var errs []error
	if e.stop != nil {
		close(e.stop)
		e.done.Wait()
		e.stop = nil
		if err := e.emit(ctx, e.limiter.due(e.now(), true)); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.Logs.Shutdown(ctx))
	return errors.Join(errs...)
}

func (e *lokiExporter) summarise() {
	defer e.done.Done()
	// Checking four times per interval keeps a summary's window within
	// 1.25 intervals of its first suppressed event.
	t := time.NewTicker(max(e.limiter.interval/4, 250*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if err := e.emit(context.Background(), e.limiter.due(e.now(), false)); err != nil {
				e.logger.Warn("Could not queue the summary of suppressed events", zap.Error(err))
			}
		}
	}
}

func (e *lokiExporter) emit(ctx context.Context, sums []suppression) error {
	if len(sums) == 0 {
		return nil
	}
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := range sums {
		e.summaryRecord(&sums[i], lrs.AppendEmpty())
	}
	return e.offer(ctx, ld)
}

// summaryRecord fills lr with the one entry that stands for a source's
// suppressed events.
func (e *lokiExporter) summaryRecord(s *suppression, lr plog.LogRecord) {
	lr.SetTimestamp(pcommon.NewTimestampFromTime(s.To))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(s.To))
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetSeverityText("warn")
	attrs := lr.Attributes()
	for _, k := range e.summaryAttrs {
		if v, ok := s.Attrs[k]; ok {
			attrs.PutStr(k, v)
		}
	}
	if _, ok := attrs.Get("service"); !ok {
		attrs.PutStr("service", "bantay")
	}
	attrs.PutStr("event.kind", "events_suppressed")
	attrs.PutStr(e.keyAttr, s.Key)
	attrs.PutInt("count", s.Count)
	attrs.PutStr("window_start", s.From.UTC().Format(time.RFC3339Nano))
	lr.Body().SetStr(fmt.Sprintf("%d events suppressed for %s %s in the last %s",
		s.Count, e.keyAttr, s.Key, windowText(s.To.Sub(s.From))))
}

// windowText says how long a suppression window was, in words a NOC reads
// at a glance: "minute" for the usual one-minute window.
func windowText(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d <= time.Second:
		return "second"
	case d == time.Minute:
		return "minute"
	default:
		return d.String()
	}
}

// ConsumeLogs applies the per-source rate limit and hands what passes to
// exporterhelper's queue (offer). It returns at once: the queue never
// blocks, and the events that do not fit are dropped and counted.
func (e *lokiExporter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if e.limiter == nil {
		return e.offer(ctx, ld)
	}
	now := e.now()
	type verdict struct {
		pass    bool
		summary *suppression
	}
	verdicts := make([]verdict, 0, ld.LogRecordCount())
	refused, summaries := 0, 0
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		res := rls.At(i).Resource().Attributes()
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				rec := lrs.At(k).Attributes()
				v, ok := lookup(res, rec, e.keyAttr)
				if !ok || v.AsString() == "" {
					verdicts = append(verdicts, verdict{pass: true})
					continue
				}
				pass, sum := e.limiter.admit(v.AsString(), now, func() map[string]string {
					m := make(map[string]string, len(e.summaryAttrs))
					for _, a := range e.summaryAttrs {
						if av, ok := lookup(res, rec, a); ok {
							m[a] = av.AsString()
						}
					}
					return m
				})
				if !pass {
					refused++
				}
				if sum != nil {
					summaries++
				}
				verdicts = append(verdicts, verdict{pass: pass, summary: sum})
			}
		}
	}
	if refused > 0 {
		e.tel.suppressed(ctx, int64(refused))
	}
	if refused == 0 && summaries == 0 {
		return e.offer(ctx, ld)
	}

	// Rebuild the batch without the refused records, with each summary
	// right before the event that ended its window. The input is not
	// modified: other consumers of the same batch may be reading it.
	out := plog.NewLogs()
	n := 0
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		orl := out.ResourceLogs().AppendEmpty()
		rl.Resource().CopyTo(orl.Resource())
		orl.SetSchemaUrl(rl.SchemaUrl())
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			osl := orl.ScopeLogs().AppendEmpty()
			sl.Scope().CopyTo(osl.Scope())
			osl.SetSchemaUrl(sl.SchemaUrl())
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				v := verdicts[n]
				n++
				if v.summary != nil {
					e.summaryRecord(v.summary, osl.LogRecords().AppendEmpty())
				}
				if v.pass {
					lrs.At(k).CopyTo(osl.LogRecords().AppendEmpty())
				}
			}
		}
	}
	if out.LogRecordCount() == 0 {
		return nil
	}
	return e.offer(ctx, out)
}

// offer hands ld to exporterhelper's queue without waiting for room. The
// queue counts events but refuses a request larger than its free room
// whole (ErrQueueIsFull), or larger than its capacity for good, so a batch
// of 100 events would be dropped where 99 fitted. A batch that does not
// fit whole is therefore offered one event at a time, in order, until one
// does not fit: the events before it are queued, it and the rest are
// dropped, counted in bantay_loki_queue_full_events. (Offering the rest
// too would rarely find room freed within those microseconds, and each
// refused offer is an error line in exporterhelper's log and counts in its
// otelcol_exporter_enqueue_failed_log_records, which so counts the whole
// batch once and then the first event that did not fit.) The error, when
// events were dropped, is exporterhelper.ErrQueueIsFull saying how many.
// A queue that counts requests or bytes takes each batch whole or not at
// all: events one at a time would each take a request's room.
func (e *lokiExporter) offer(ctx context.Context, ld plog.Logs) error {
	n := ld.LogRecordCount()
	whole := e.queueEvents == 0 || n <= 1
	if whole || int64(n) <= e.queueEvents {
		err := e.Logs.ConsumeLogs(ctx, ld)
		if !errors.Is(err, exporterhelper.ErrQueueIsFull) {
			return err
		}
		if whole {
			e.tel.queueFull(ctx, int64(n))
			return err
		}
	}
	var offered int
	var errs []error
	full := false
	eachRecord(ld, func(one plog.Logs) bool {
		offered++
		switch err := e.Logs.ConsumeLogs(ctx, one); {
		case errors.Is(err, exporterhelper.ErrQueueIsFull):
			full = true
		case err != nil:
			errs = append(errs, err) // only with wait_for_result: the push failed
		}
		return !full
	})
	if full {
		dropped := n - offered + 1
		e.tel.queueFull(ctx, int64(dropped))
		errs = append(errs, fmt.Errorf("%w: %d of %d events dropped", exporterhelper.ErrQueueIsFull, dropped, n))
	}
	return errors.Join(errs...)
}

// eachRecord calls f with each log record of ld in a batch of its own,
// with its resource and scope, until f returns false.
func eachRecord(ld plog.Logs, f func(plog.Logs) bool) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				one := plog.NewLogs()
				orl := one.ResourceLogs().AppendEmpty()
				rl.Resource().CopyTo(orl.Resource())
				orl.SetSchemaUrl(rl.SchemaUrl())
				osl := orl.ScopeLogs().AppendEmpty()
				sl.Scope().CopyTo(osl.Scope())
				osl.SetSchemaUrl(sl.SchemaUrl())
				lrs.At(k).CopyTo(osl.LogRecords().AppendEmpty())
				if !f(one) {
					return
				}
			}
		}
	}
}
