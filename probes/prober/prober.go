// Package prober measures one target. There is one file per method
// (icmp.go, tcp.go, http.go, dns.go, udp.go) behind one interface, in the
// manner of cloudprober: the scheduler in package agent decides when, a
// Prober only knows how. round.go takes a round of several probes of one
// target (as SmokePing does) and summarises it, for the daemon and for
// `bantay-probe measure` alike.
//
// On Linux latencies are the kernel's: send and receive timestamps of the
// packets (icmp, udp, dns, http's phases) and TCP_INFO's handshake RTT
// (tcp, http's connect), so the probe's own work and scheduling are not in
// them (docs/probe.md, "How each RTT is timed"). Each is used only where it
// agrees with the monotonic clock (time.Since on a time.Now taken just
// before the measured operation), which is the latency elsewhere, so
// wall-clock steps from NTP never show up as latency. Every dial binds to
// the uplink's source address when one is given, which is what makes a
// probe with two SIMs measure each SIM.
package prober

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/bantay-noc/bantay/probes/config"
)

// Reason classifies a failed measurement. The values are the `reason`
// attribute of bantay.probe.failures (docs/metric-model.md).
type Reason string

// Failure reasons.
const (
	ReasonTimeout    Reason = "timeout"
	ReasonRefused    Reason = "refused"
	ReasonDNS        Reason = "dns"
	ReasonTLS        Reason = "tls"
	ReasonHTTPStatus Reason = "http_status"
	ReasonOther      Reason = "other"
)

// Prober measures one target.
type Prober interface {
	// Method is one of config's Method constants.
	Method() string
	// Probe makes one measurement within ctx's deadline. On failure the
	// error says why (see Classify) and the Result holds no latency.
	Probe(ctx context.Context) (Result, error)
}

// Result is one measurement.
type Result struct {
	// RTT is the latency the method measures: the round trip for icmp and
	// udp, the handshake for tcp, the query for dns, the whole request for
	// http. It is zero only when the probe failed.
	RTT time.Duration
	// Phases divides an http RTT as blackbox_exporter does (PhaseDNS …
	// PhaseTransfer, in that order, each present only when it happened);
	// their durations add up to RTT. Nil for other methods.
	Phases []Phase
	// StatusCode is the HTTP status of the answer (also when it was not the
	// expected one); 0 for other methods.
	StatusCode int
	// CertNotAfter is the earliest expiry in the certificate chain an https
	// server presented (blackbox's probe_ssl_earliest_cert_expiry); zero
	// without TLS.
	CertNotAfter time.Time
}

// Phase is one part of an http request's time.
type Phase struct {
	Name     string
	Duration time.Duration
}

// HTTP phase names, the values of the agent's `phase` attribute.
const (
	PhaseDNS        = "dns"
	PhaseConnect    = "connect"
	PhaseTLS        = "tls"
	PhaseProcessing = "processing" // request written until the first response byte (ttfb)
	PhaseTransfer   = "transfer"   // first byte until the body is read
)

// PhaseNames are the http phases in the order they happen.
var PhaseNames = []string{PhaseDNS, PhaseConnect, PhaseTLS, PhaseProcessing, PhaseTransfer}

// Options are what every method shares.
type Options struct {
	// BindAddress is the local source address for every dial; the zero
	// value lets the kernel choose.
	BindAddress netip.Addr
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// ProbeID is written into UDP echo packets so a reflector operator can
	// tell who is measuring them.
	ProbeID string
}

// New returns the prober for a validated target.
func New(t config.Target, opts Options) (Prober, error) {
	switch t.Method {
	case config.MethodTCP:
		return NewTCP(t.Address, opts), nil
	case config.MethodHTTP:
		return NewHTTP(t.Address, t.ExpectStatus, t.InsecureSkipVerify, opts), nil
	case config.MethodUDP:
		return NewUDP(t.Address, opts)
	case config.MethodDNS:
		return NewDNS(t.Address, t.QueryName, t.QueryType, opts)
	case config.MethodICMP:
		return NewICMP(t.Address, opts)
	default:
		return nil, fmt.Errorf("target %q: unknown method %q", t.Name, t.Method)
	}
}

// dialer builds the net.Dialer for one network ("tcp" or "udp"), bound to
// the uplink's address.
func (o Options) dialer(network string) *net.Dialer {
	d := &net.Dialer{Resolver: o.Resolver}
	if o.BindAddress.IsValid() {
		ip := net.IP(o.BindAddress.AsSlice())
		switch network {
		case "udp":
			d.LocalAddr = &net.UDPAddr{IP: ip}
		default:
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	return d
}

// StatusError is an HTTP answer with a status the target does not expect.
type StatusError struct {
	Got int
	// Want is the expected status, 0 for "any 2xx or 3xx".
	Want int
}

func (e *StatusError) Error() string {
	if e.Want == 0 {
		return fmt.Sprintf("http status %d, want 2xx or 3xx", e.Got)
	}
	return fmt.Sprintf("http status %d, want %d", e.Got, e.Want)
}

// Classify names the reason for a probe error from the error itself (its
// type and wrapped causes), never from timing. nil classifies as "".
func Classify(err error) Reason {
	if err == nil {
		return ""
	}
	var status *StatusError
	if errors.As(err, &status) {
		return ReasonHTTPStatus
	}
	var rcode *RcodeError
	if errors.As(err, &rcode) {
		return ReasonDNS
	}
	// Before timeout: a resolver that times out is a DNS problem, and the
	// operator should look at DNS, not at the path.
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return ReasonDNS
	}
	if isTimeout(err) {
		return ReasonTimeout
	}
	if isTLS(err) {
		return ReasonTLS
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return ReasonRefused
	}
	return ReasonOther
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLS(err error) bool {
	var (
		header    tls.RecordHeaderError
		alert     tls.AlertError
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	if errors.As(err, &header) || errors.As(err, &alert) || errors.As(err, &verify) ||
		errors.As(err, &authority) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return true
	}
	// Many handshake failures in crypto/tls are plain errors.New("tls: …")
	// values with no type to match; their prefix is the stable signal.
	// net/http replaces the RecordHeaderError of an https request answered
	// in plain HTTP with a plain error of its own.
	for e := err; e != nil; e = errors.Unwrap(e) {
		if msg := e.Error(); strings.HasPrefix(msg, "tls: ") || msg == "http: server gave HTTP response to HTTPS client" {
			return true
		}
	}
	return false
}
