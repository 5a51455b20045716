package prober

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/bantay-noc/bantay/probes/config"
)

// DNS measures the time a resolver takes to answer one query over UDP:
// from writing the query to reading the answer (miekg/dns's RTT), the
// resolver's name, if it has one, resolved before the clock starts. An
// answer whose rcode is not NOERROR is a failure with reason dns
// (*RcodeError); a truncated answer is still an answer, and its time is the
// resolver's.
type DNS struct {
	server string
	msg    *dns.Msg
	opts   Options
}

// NewDNS returns a prober asking the resolver at host:port for name's
// records of qtype (A when empty).
func NewDNS(server, name, qtype string, opts Options) (*DNS, error) {
	if qtype == "" {
		qtype = config.DefaultQueryType
	}
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		return nil, fmt.Errorf("dns prober: %q is not a DNS record type", qtype)
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, fmt.Errorf("dns prober: %q is not a domain name", name)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	return &DNS{server: server, msg: m, opts: opts}, nil
}

// Method implements Prober.
func (*DNS) Method() string { return config.MethodDNS }

// RcodeError is a resolver's answer with an error rcode (NXDOMAIN,
// SERVFAIL, REFUSED …).
type RcodeError struct {
	Name  string
	Rcode int
}

func (e *RcodeError) Error() string {
	return fmt.Sprintf("dns: %s answered %s", e.Name, dns.RcodeToString[e.Rcode])
}

// Probe implements Prober.
func (p *DNS) Probe(ctx context.Context) (Result, error) {
	addr, err := resolve(ctx, p.opts, p.server)
	if err != nil {
		return Result{}, err
	}
	c := &dns.Client{Net: "udp", Dialer: p.opts.dialer("udp")}
	// A copy with a fresh id per query, so a late answer to an earlier
	// query cannot be taken for this one's.
	m := p.msg.Copy()
	m.Id = dns.Id()
	resp, rtt, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		// The socket's deadline (miekg/dns sets it from ctx's) may expire
		// a moment before ctx reports it: both are the resolver's silence.
		if ctx.Err() != nil || isTimeout(err) {
			return Result{}, fmt.Errorf("dns: no answer from %s: %w", p.server, err)
		}
		return Result{}, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return Result{}, &RcodeError{Name: m.Question[0].Name, Rcode: resp.Rcode}
	}
	return Result{RTT: rtt}, nil
}
