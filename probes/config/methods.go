package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Methods lists every probe method, in the order error messages name them.
var Methods = []string{MethodICMP, MethodTCP, MethodHTTP, MethodDNS, MethodUDP}

// DefaultQueryType is the record type of a dns target without query_type.
const DefaultQueryType = "A"

// CheckAddress checks a target address for its method: a host for icmp,
// host:port for tcp, udp and dns (the resolver), an http(s) URL for http.
// Both the config and `bantay-probe measure` use it, so a bad address gets
// the same message from either.
func CheckAddress(method, address string) error {
	switch method {
	case MethodICMP:
		if address == "" {
			return fmt.Errorf("is required (a host name or IP address)")
		}
		if _, _, err := net.SplitHostPort(address); err == nil || strings.ContainsAny(address, "/ []") {
			return fmt.Errorf("%q: for method icmp give a host name or IP address (no port, no brackets)", address)
		}
	case MethodTCP, MethodUDP, MethodDNS:
		if address == "" {
			return fmt.Errorf("is required (host:port)")
		}
		if err := checkHostPort(address); err != nil {
			return fmt.Errorf("%q: %v", address, err)
		}
	case MethodHTTP:
		if address == "" {
			return fmt.Errorf("is required (a URL such as http://host/health)")
		}
		if u, err := url.Parse(address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q is not an http:// or https:// URL", address)
		}
	default:
		return fmt.Errorf("method %q is not one of %s", method, strings.Join(Methods, ", "))
	}
	return nil
}

// CheckQuery checks a dns target's query name and type, filling the
// default type; it returns the field at fault and the problem.
func CheckQuery(name string, qtype *string) (field string, err error) {
	if name == "" {
		return "query_name", fmt.Errorf("is required for method dns (the name to ask the resolver for)")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "query_name", fmt.Errorf("%q is not a domain name", name)
	}
	if *qtype == "" {
		*qtype = DefaultQueryType
	}
	canon := strings.ToUpper(*qtype)
	if _, ok := dns.StringToType[canon]; !ok {
		return "query_type", fmt.Errorf("%q is not a DNS record type (A, AAAA, MX, TXT, …)", *qtype)
	}
	*qtype = canon
	return "", nil
}

// MaxCount bounds the probes of one round: icmp numbers them with 16 bits,
// and a round that long is a soak, not a measurement.
const MaxCount = 10000

// maxSpacing is the longest gap between the probes of a daemon's round:
// fping's and SmokePing's one second.
const maxSpacing = time.Second

// RoundSpacing is the gap between the starts of consecutive probes of a
// run of count probes: at most a second, and short enough that the last
// probe's timeout still ends before the next run, so the whole round fits
// in the interval and runs never overlap.
func RoundSpacing(interval, timeout time.Duration, count int) time.Duration {
	if count <= 1 {
		return maxSpacing
	}
	return min(maxSpacing, (interval-timeout)/time.Duration(count))
}

// DefaultCount is the number of probes in a round of method when nobody
// said otherwise: SmokePing's five for the packet methods, where loss and
// jitter need several packets, one for tcp, http and dns, where each probe
// is a whole exchange (docs/decisions.md, "Rounds of five for icmp and
// udp by default").
func DefaultCount(method string) int {
	switch method {
	case MethodICMP, MethodUDP:
		return 5
	default:
		return 1
	}
}

// checkCount fills the default count and checks that count probes fit in
// the target's schedule.
func (t *Target) checkCount(v *validator, p string) {
	implicit := t.Count == 0
	if implicit {
		t.Count = DefaultCount(t.Method)
	}
	switch {
	case t.Count < 1 || t.Count > MaxCount:
		v.add(p+".count", "%d is not 1..%d", t.Count, MaxCount)
	case t.Count > 1 && t.Timeout > 0 && t.Timeout < t.Interval && RoundSpacing(t.Interval, t.Timeout, t.Count) < time.Millisecond:
		hint := ""
		if implicit {
			hint = fmt.Sprintf(" (%d is the default for %s; set count, or widen the gap)", t.Count, t.Method)
		}
		v.add(p+".count", "%d probes do not fit between the timeout %s and the interval %s (at least 1ms apart)%s", t.Count, t.Timeout, t.Interval, hint)
	}
}
