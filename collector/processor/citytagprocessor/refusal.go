package citytagprocessor

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"google.golang.org/grpc/codes"

	"github.com/bantay-noc/bantay/internal/otlperror"
)

// The sender of a request citytag rejected points of is told so, as the
// store tells it of samples the TSDB refuses: the points citytag can place
// go on, and when they are stored (or there were none) the request fails
// with a permanent InvalidArgument naming how many points were rejected and
// the first one's reason, probe and detail. The OTLP receiver answers it
// with gRPC INVALID_ARGUMENT or HTTP 400, and the OTel SDKs do not retry it:
// re-sending cannot place a point the registry or gazetteer does not know.
//
// processorhelper forwards only when the process func returns nil, so the
// processorhelper-built processor (kept for its telemetry) is wrapped by
// refusingProcessor, which gives each call a callCtx for processMetrics to
// record its rejections in. callCtxs are pooled, and the wrapped consumer
// after citytag gets the caller's context back, never the pooled one: a call
// with nothing rejected allocates nothing more than it did before.

// allReasons lists every rejection reason, so a call counts them without a map.
var allReasons = [...]string{
	reasonMissingProbeID, reasonUnknownProbe, reasonUnknownCarrier, reasonUnknownNetwork,
	reasonUnregisteredLink, reasonMissingDstCity, reasonUnknownDstCity, reasonInvalidValue,
	reasonUnauthenticated, reasonIdentityMismatch,
	reasonSeriesLimit, reasonAttributeLimit, reasonAttrNameTooLong, reasonAttrValueTooLong,
	reasonInvalidUTF8, reasonTimestampInFuture, reasonTimestampTooOld,
}

// rejections is what one ConsumeMetrics call rejected.
type rejections struct {
	points    int // rejected
	forwarded int // what went on to the next consumer
	byReason  [len(allReasons)]int
	first     struct{ reason, probe, target, detail string }
}

// add records n rejected points. target is the point's target attribute,
// empty for a whole resource. r may be nil (processMetrics called directly).
func (r *rejections) add(reason string, pl placement, target, detail string, n int) {
	if r == nil || n <= 0 {
		return
	}
	if r.points == 0 {
		r.first.reason, r.first.probe, r.first.target, r.first.detail = reason, pl.probe, target, detail
	}
	r.points += n
	for i, known := range allReasons {
		if known == reason {
			r.byReason[i] += n
			break
		}
	}
}

// err is the refusal the sender gets, or nil when nothing was rejected.
// Everything in it comes from the request itself (ids, names, values) or
// the registry; no credential is ever part of a detail.
func (r *rejections) err() error {
	if r.points == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("citytag rejected ")
	b.WriteString(strconv.Itoa(r.points))
	b.WriteString(" of ")
	b.WriteString(strconv.Itoa(r.points + r.forwarded))
	b.WriteString(" points; first: ")
	b.WriteString(r.first.reason)
	if r.first.probe == "" {
		b.WriteString(" (no probe id")
	} else {
		b.WriteString(" (probe ")
		b.WriteString(r.first.probe)
	}
	if r.first.target != "" {
		b.WriteString(", target ")
		b.WriteString(quote(r.first.target))
	}
	b.WriteString("): ")
	b.WriteString(r.first.detail)
	reasons := 0
	for _, n := range r.byReason {
		if n > 0 {
			reasons++
		}
	}
	if reasons > 1 {
		b.WriteString("; ")
		b.WriteString(strconv.Itoa(reasons))
		b.WriteString(" reasons in all:")
		sep := " "
		for i, n := range r.byReason {
			if n > 0 {
				b.WriteString(sep)
				b.WriteString(allReasons[i])
				b.WriteString(" ")
				b.WriteString(strconv.Itoa(n))
				sep = ", "
			}
		}
	}
	return otlperror.Permanent(codes.InvalidArgument, b.String())
}

// callCtx is the context of one call through citytag: the caller's, plus
// the call's rejections.
type callCtx struct {
	context.Context
	rej rejections
	// escaped is set when the processorhelper passed on a context derived
	// from this one, which the next consumer may keep: it is not reused.
	escaped bool
}

type callCtxKey struct{}

func (c *callCtx) Value(key any) any {
	if _, ok := key.(callCtxKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// callOf returns the call's rejections and the caller's context; nil and
// ctx when ctx did not come through refusingProcessor.
func callOf(ctx context.Context) (*rejections, context.Context) {
	if c, ok := ctx.(*callCtx); ok {
		return &c.rej, c.Context
	}
	if c, ok := ctx.Value(callCtxKey{}).(*callCtx); ok {
		return &c.rej, ctx
	}
	return nil, ctx
}

var callCtxs = sync.Pool{New: func() any { return new(callCtx) }}

// refusingProcessor is the processorhelper-built citytag, answering the
// sender with a permanent InvalidArgument when points were rejected.
type refusingProcessor struct {
	processor.Metrics
}

func (p refusingProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	// From here on a refusal is citytag's (counted by point), not the
	// receiver's (counted by the refusals middleware).
	otlperror.MarkDecoded(ctx)
	c := callCtxs.Get().(*callCtx)
	c.Context = ctx
	err := p.Metrics.ConsumeMetrics(c, md)
	var refusal error
	if err == nil {
		// The placeable points are stored (or there were none): now the
		// sender hears about the rest. A failure downstream is returned
		// unchanged instead, so a retryable one stays retryable.
		refusal = c.rej.err()
	}
	if !c.escaped {
		*c = callCtx{}
		callCtxs.Put(c)
	}
	if err != nil {
		return err
	}
	return refusal
}

// forwarder is the consumer processorhelper hands citytag's output to: the
// next consumer, called with the caller's context.
type forwarder struct {
	next consumer.Metrics
}

func (f forwarder) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if c, ok := ctx.(*callCtx); ok {
		ctx = c.Context
	} else if c, ok := ctx.Value(callCtxKey{}).(*callCtx); ok {
		c.escaped = true
	}
	return f.next.ConsumeMetrics(ctx, md)
}

func (f forwarder) Capabilities() consumer.Capabilities { return f.next.Capabilities() }
