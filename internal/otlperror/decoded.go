package otlperror

import (
	"context"
	"sync/atomic"
)

type decodedKey struct{}

// TrackDecoded returns ctx carrying a flag, and a function reporting whether
// MarkDecoded was called with a context derived from it. A server
// middleware around the OTLP receiver uses it to tell a request the
// receiver refused before decoding it (the middleware counts those) from
// one the pipeline refused (citytag counts those, by point).
func TrackDecoded(ctx context.Context) (context.Context, func() bool) {
	var b atomic.Bool
	return context.WithValue(ctx, decodedKey{}, &b), b.Load
}

// MarkDecoded records that the request of ctx was decoded and reached the
// pipeline. Without TrackDecoded upstream it does nothing.
func MarkDecoded(ctx context.Context) {
	if b, ok := ctx.Value(decodedKey{}).(*atomic.Bool); ok {
		b.Store(true)
	}
}
