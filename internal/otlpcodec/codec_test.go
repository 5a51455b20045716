package otlpcodec

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeRequest stands for pdata's internal OTLP request types: it has
// their encoding methods.
type fakeRequest struct{ pmetricotlp.ExportRequest }

func newRequest() *fakeRequest { return &fakeRequest{pmetricotlp.NewExportRequest()} }

func (r *fakeRequest) SizeProto() int {
	b, _ := r.ExportRequest.MarshalProto()
	return len(b)
}

func (r *fakeRequest) MarshalProto(buf []byte) int {
	b, _ := r.ExportRequest.MarshalProto()
	return copy(buf, b)
}

func request(t *testing.T) []byte {
	t.Helper()
	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("bantay.test")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnUndecodableOTLPRequestIsKeptForFailureOnce(t *testing.T) {
	c := New()
	good := request(t)
	for _, body := range [][]byte{good[:len(good)/2], []byte("\x0a\xff\xff\xff\xff\x0fnot a protobuf")} {
		req := newRequest()
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(body)}, req); err != nil {
			t.Fatalf("Unmarshal returned %v: grpc-go would answer it INTERNAL", err)
		}
		if err := c.Failure(req); err == nil {
			t.Errorf("%q: no failure kept", body)
		}
		if err := c.Failure(req); err != nil {
			t.Errorf("%q: failure kept after it was taken: %v", body, err)
		}
	}

	req := newRequest()
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(good)}, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Failure(req); err != nil {
		t.Errorf("a request that decoded has a failure: %v", err)
	}
	if n := req.Metrics().DataPointCount(); n != 1 {
		t.Errorf("decoded %d points, want 1", n)
	}
	c.failed.Range(func(k, _ any) bool {
		t.Errorf("failure of %T still kept", k)
		return true
	})
}

func TestAnyOtherMessageFailsAsWithTheProtoCodec(t *testing.T) {
	var v wrapperspb.StringValue
	if err := New().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte("\x0a\xff\xff"))}, &v); err == nil {
		t.Error("a broken non-OTLP message decoded without error")
	}
}

func TestTheRegisteredCodecIsLeftAlone(t *testing.T) {
	before := encoding.GetCodecV2(proto.Name)
	c := New()
	if got := encoding.GetCodecV2(proto.Name); got != before || got == encoding.CodecV2(c) {
		t.Errorf("registered proto codec changed to %T", got)
	}
	if c.Name() != proto.Name {
		t.Errorf("Name() = %q", c.Name())
	}
	// The OTLP request round-trips through the codec.
	good := request(t)
	req := newRequest()
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(good)}, req); err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Materialize()) != string(good) {
		t.Error("Marshal does not give back the request")
	}
}
