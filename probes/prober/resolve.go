package prober

import (
	"context"
	"net"
	"net/netip"
)

// resolve turns host:port into ip:port with the configured resolver, so
// that DNS time stays out of TCP and UDP latencies (and DNS failures are
// classified as such). An address that is already an IP is returned as is.
func resolve(ctx context.Context, o Options, hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return hostport, nil
	}
	r := o.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	network := "ip"
	if o.BindAddress.IsValid() {
		// A bound socket can only reach addresses of its own family.
		network = "ip4"
		if o.BindAddress.Is6() && !o.BindAddress.Is4In6() {
			network = "ip6"
		}
	}
	ips, err := r.LookupNetIP(ctx, network, host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ips[0].Unmap().String(), port), nil
}
