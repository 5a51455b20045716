package prober

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/bantay-noc/bantay/probes/config"
)

// DNS measures the time a resolver takes to answer one query over UDP:
// from sending the query to the answer's arrival (messages packed and
// parsed by miekg/dns), the resolver's name, if it has one, resolved
// before the clock starts. An
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

// Probe implements Prober. The query goes out on a socket of its own, as a
// round of one of a sequenced method, so that its RTT is kernel to kernel
// as udp's: the kernel's send timestamp of the query to its receive
// timestamp of the answer (before, miekg/dns's clock around the exchange
// read 0.03–0.11 ms high against the wire on a busy box,
// internal/harness/pingpeer).
func (p *DNS) Probe(ctx context.Context) (Result, error) {
	res, err := probeSequenced(ctx, dnsQuery{p})
	if err != nil && isTimeout(err) {
		return Result{}, fmt.Errorf("dns: no answer from %s: %w", p.server, err)
	}
	return res, err
}

// dnsQuery opens one query's socket.
type dnsQuery struct{ p *DNS }

func (q dnsQuery) openRound(ctx context.Context, count int) (roundConn, error) {
	addr, err := resolve(ctx, q.p.opts, q.p.server)
	if err != nil {
		return nil, err
	}
	conn, err := q.p.opts.dialer("udp").DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	// A copy with a fresh id per query, so a late answer to an earlier
	// query cannot be taken for this one's.
	m := q.p.msg.Copy()
	m.Id = dns.Id()
	c := &dnsConn{datagram: datagram{conn: conn, buf: make([]byte, dns.MaxMsgSize)}, msg: m}
	c.timestamps(count)
	return c, nil
}

// dnsConn is one query's socket: it sends the query and reads answers
// until one carries the query's id.
type dnsConn struct {
	datagram
	msg *dns.Msg
}

func (c *dnsConn) send(i int) error {
	b, err := c.msg.Pack()
	if err != nil {
		return err
	}
	return c.write(i, b)
}

// recv returns the answer; an answer whose rcode is not NOERROR fails the
// query with an *RcodeError.
func (c *dnsConn) recv() (int, time.Time, time.Time, time.Time, error) {
	for {
		n, mono, kernel, err := c.read()
		if err != nil {
			return -1, mono, time.Time{}, time.Time{}, err
		}
		resp := new(dns.Msg)
		if resp.Unpack(c.buf[:n]) != nil || !resp.Response || resp.Id != c.msg.Id {
			continue
		}
		if resp.Rcode != dns.RcodeSuccess {
			return 0, mono, time.Time{}, time.Time{}, &RcodeError{Name: c.msg.Question[0].Name, Rcode: resp.Rcode}
		}
		return 0, mono, c.stamps.of(0), kernel, nil
	}
}
