package otlperror

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestSenderReadsTheMessageOnce: the status the OTLP receiver finds
// (status.FromError, as its internal/errors does) carries the message
// alone, also when another component wrapped the error, and the error is
// still permanent. With consumererror.NewPermanent(status.Error(…)) the
// message was "Permanent error: rpc error: code = InvalidArgument desc = …".
func TestSenderReadsTheMessageOnce(t *testing.T) {
	err := Permanent(codes.InvalidArgument, "citytag rejected 1 of 3 points")
	for _, e := range []error{err, fmt.Errorf("tsdb: %w", err)} {
		assert.True(t, consumererror.IsPermanent(e))
	}
	st, ok := status.FromError(err)
	assert.True(t, ok)
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Equal(t, "citytag rejected 1 of 3 points", st.Message())
	assert.Equal(t, "citytag rejected 1 of 3 points", err.Error())
	var gs interface{ GRPCStatus() *status.Status }
	assert.True(t, errors.As(err, &gs))
}

// TestMessageIsValidAndBounded: whatever a caller puts in, the message can
// be encoded (valid UTF-8) and is at most MaxMessage bytes.
func TestMessageIsValidAndBounded(t *testing.T) {
	for _, in := range []string{"bad \xff\xfe byte", strings.Repeat("é", MaxMessage), strings.Repeat("x", 10*MaxMessage)} {
		msg := status.Convert(Permanent(codes.InvalidArgument, in)).Message()
		assert.True(t, utf8.ValidString(msg), "%q", msg)
		assert.LessOrEqual(t, len(msg), MaxMessage)
	}
	assert.Equal(t, "bad \uFFFD byte", Permanent(codes.InvalidArgument, "bad \xff\xfe byte").Error())
}
