// Package otlpcodec is the gRPC codec of Bantay's OTLP servers. It decodes
// as the registered "proto" codec does (pdata's), with one difference: an
// OTLP request that does not decode is not an error to grpc-go, because
// grpc-go (rpc_util.go, recv) answers any codec error with INTERNAL, which
// reads as a server fault, whatever status the codec returned. The codec
// keeps the error instead, for the server to take (Failure) and refuse the
// call with INVALID_ARGUMENT before the handler runs.
//
// It is a server codec only (grpc.ForceServerCodecV2): the process-wide
// codec registry, and with it every gRPC client in the process, is left
// alone.
package otlpcodec

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// otlpRequest is what pdata's OTLP request types implement, and what its
// codec decodes with its own code; the codec keeps decoding errors of those
// only. They are the requests of unary methods, which the server refuses
// before their handler (see Failure); a failure of any other message stays
// grpc-go's error.
type otlpRequest interface {
	SizeProto() int
	MarshalProto([]byte) int
	UnmarshalProto([]byte) error
}

// Codec wraps the registered proto codec.
type Codec struct {
	delegate encoding.CodecV2
	// failed maps a message that did not decode to its error, from
	// Unmarshal until Failure takes it.
	failed sync.Map
}

var _ encoding.CodecV2 = (*Codec)(nil)

// New wraps the proto codec registered when it is called (pdata's, which
// registers itself at init).
func New() *Codec {
	return &Codec{delegate: encoding.GetCodecV2(proto.Name)}
}

// Name is the codec's content subtype, "proto".
func (c *Codec) Name() string { return proto.Name }

// Marshal encodes as the proto codec does.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) { return c.delegate.Marshal(v) }

// Unmarshal decodes as the proto codec does. If v is an OTLP request that
// does not decode, it reports success and keeps the error for Failure:
// whoever installs the codec must take it, for every message grpc-go
// received (a stats handler's stats.InPayload names each one), or it is
// kept for good.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.delegate.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if _, ok := v.(otlpRequest); !ok {
		return err
	}
	c.failed.Store(v, err)
	return nil
}

// Failure returns, and forgets, the decoding error of v: nil if v decoded.
func (c *Codec) Failure(v any) error {
	err, ok := c.failed.LoadAndDelete(v)
	if !ok {
		return nil
	}
	return err.(error)
}
