// Package otlperror builds the errors a pipeline component returns to refuse
// data for good, so that the sender reads the component's message once.
//
// The idiom consumererror.NewPermanent(status.Error(code, msg)) reaches an
// OTLP sender as "Permanent error: rpc error: code = InvalidArgument desc =
// msg": the v0.165 OTLP receiver takes the code from the status it finds
// with errors.As, but grpc's status.FromError then replaces the message
// with the whole error's text, prefixes included. An error that is itself a
// gRPC status holder is answered with that status exactly (code, message,
// details), and still unwraps to the permanent error, so
// consumererror.IsPermanent holds for every component between.
package otlperror

import (
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxMessage bounds the message, in bytes: it is built from what a sender
// sent, and it goes back to the sender and into the collector's log.
const MaxMessage = 4 << 10

// Permanent returns a permanent error with gRPC status code and message
// msg. Its text, and the status message the sender gets, is msg alone,
// made valid UTF-8 (the OTLP/HTTP receiver cannot encode a google.rpc.Status
// with anything else, and answers 500 instead) and cut to MaxMessage bytes.
func Permanent(code codes.Code, msg string) error {
	st := status.New(code, sanitize(msg))
	return &permanentStatus{st: st, permanent: consumererror.NewPermanent(st.Err())}
}

type permanentStatus struct {
	st        *status.Status
	permanent error
}

func (e *permanentStatus) Error() string { return e.st.Message() }

// GRPCStatus is what status.FromError answers with, unchanged, because e
// implements it directly.
func (e *permanentStatus) GRPCStatus() *status.Status { return e.st }

func (e *permanentStatus) Unwrap() error { return e.permanent }

func sanitize(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= MaxMessage {
		return msg
	}
	const ellipsis = "…"
	cut := MaxMessage - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + ellipsis
}
