package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

type validator struct {
	gaz   *gazetteer.Gazetteer
	probs []Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// validate checks the config, fills defaults and rewrites names to their
// canonical gazetteer spelling.
func (c *Config) validate() []Problem {
	v := &validator{}
	if g, err := c.gazetteer(); err != nil {
		v.add("gazetteer", "%v", err)
		v.gaz = gazetteer.Default() // to check the rest against
	} else {
		v.gaz = g
	}

	// The collector's registry checks ids with the same function, so an id
	// valid here can be registered there.
	if err := metricmodel.CheckProbeID(c.Probe.ID); err != nil {
		v.add("probe.id", "%v", err)
	}
	if c.Probe.City == "" {
		v.add("probe.city", "is required")
	} else if city, ok := v.gaz.City(c.Probe.City); ok {
		c.Probe.City = city.Name
	} else {
		v.add("probe.city", "%q is not a city in the gazetteer (known: %s)", c.Probe.City, cityNames(v.gaz))
	}
	if c.Probe.Environment == "" {
		c.Probe.Environment = DefaultEnvironment
	}

	c.Collector.validate(v)
	c.Mesh.validate(v, c.Collector)
	c.Queue.validate(v)
	c.Recording.validate(v)
	if c.Metrics.Listen != "" {
		if err := checkHostPort(c.Metrics.Listen); err != nil {
			v.add("metrics.listen", "%q: %v (give 127.0.0.1:9464 for this host only)", c.Metrics.Listen, err)
		}
	}
	if c.Reflector.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Reflector.Listen); err != nil || checkPort(port) != nil {
			v.add("reflector.listen", "%q is not host:port (give 0.0.0.0:7001 for every address)", c.Reflector.Listen)
		}
	}

	if len(c.Uplinks) == 0 {
		v.add("uplinks", "at least one uplink is required")
	}
	uplinkNames := map[string]bool{}
	binds := map[string]int{}
	kinds := map[[2]string]int{}
	for i := range c.Uplinks {
		u := &c.Uplinks[i]
		p := fmt.Sprintf("uplinks[%d]", i)
		checkName(v, p+".name", u.Name, uplinkNames)
		if u.Carrier == "" {
			v.add(p+".carrier", "is required")
		} else if canon, ok := v.gaz.Carrier(u.Carrier); ok {
			u.Carrier = canon
		} else {
			v.add(p+".carrier", "%q is not a known carrier (known: Globe, Smart, DITO, PLDT, Converge and their aliases, and any under gazetteer.carriers)", u.Carrier)
		}
		if u.NetworkType == "" {
			v.add(p+".network_type", "is required")
		} else if canon, ok := v.gaz.NetworkType(u.NetworkType); ok {
			u.NetworkType = canon
		} else {
			v.add(p+".network_type", "%q is not a known network type (4g, 5g, fiber, wifi or an alias such as LTE, NR, FTTH, and any under gazetteer.network_types)", u.NetworkType)
		}
		if u.BindAddress != "" {
			if _, err := netip.ParseAddr(u.BindAddress); err != nil {
				v.add(p+".bind_address", "%q is not an IP address", u.BindAddress)
			} else if j, dup := binds[u.BindAddress]; dup {
				v.add(p+".bind_address", "%s is also the bind_address of uplinks[%d]; two uplinks on one address measure the same path", u.BindAddress, j)
			} else {
				binds[u.BindAddress] = i
			}
		}
		// The collector tells a probe's uplinks apart by carrier and network
		// type only, so two alike would merge into one series in the store.
		kind := [2]string{u.Carrier, u.NetworkType}
		if j, dup := kinds[kind]; dup && u.Carrier != "" && u.NetworkType != "" {
			v.add(p, "carrier %s with network_type %s is already uplinks[%d]; the collector could not tell them apart", u.Carrier, u.NetworkType, j)
		} else {
			kinds[kind] = i
		}
	}

	if c.Defaults.Interval == 0 {
		c.Defaults.Interval = DefaultInterval
	}
	if c.Defaults.Timeout == 0 {
		c.Defaults.Timeout = DefaultTimeout
	}
	checkSchedule(v, "defaults", c.Defaults.Interval, c.Defaults.Timeout)

	if len(c.Targets) == 0 && !c.Mesh.Enabled {
		v.add("targets", "at least one target is required (or mesh mode, which takes them from the collector)")
	}
	targetNames := map[string]bool{}
	for i := range c.Targets {
		c.Targets[i].validate(v, fmt.Sprintf("targets[%d]", i), c.Defaults, targetNames)
	}
	return v.probs
}

// gazetteer is the shipped gazetteer with the config's additions.
func (c *Config) gazetteer() (*gazetteer.Gazetteer, error) {
	if len(c.Gazetteer.Cities)+len(c.Gazetteer.Carriers)+len(c.Gazetteer.NetworkTypes) == 0 {
		return gazetteer.Default(), nil
	}
	return gazetteer.Extend(c.Gazetteer.Cities, c.Gazetteer.Carriers, c.Gazetteer.NetworkTypes)
}

func (c *Collector) validate(v *validator) {
	if c.Protocol == "" {
		c.Protocol = ProtocolGRPC
	}
	switch c.Protocol {
	case ProtocolGRPC:
		if c.Endpoint == "" {
			v.add("collector.endpoint", "is required (host:port, e.g. 127.0.0.1:4317)")
		} else if strings.Contains(c.Endpoint, "://") {
			v.add("collector.endpoint", "%q: for protocol grpc give host:port without a scheme", c.Endpoint)
		} else if err := checkHostPort(c.Endpoint); err != nil {
			v.add("collector.endpoint", "%q: %v", c.Endpoint, err)
		}
	case ProtocolHTTP:
		if c.Endpoint == "" {
			v.add("collector.endpoint", "is required (a URL, e.g. http://127.0.0.1:4318)")
		} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("collector.endpoint", "%q: for protocol http give a URL such as http://127.0.0.1:4318", c.Endpoint)
		} else if u.Scheme == "http" && !c.TLS.Insecure {
			v.add("collector.endpoint", "%q is plain http but tls.insecure is false; use https or set tls.insecure: true", c.Endpoint)
		} else if u.Scheme == "https" && c.TLS.Insecure {
			v.add("collector.endpoint", "%q is https but tls.insecure is true", c.Endpoint)
		}
	default:
		v.add("collector.protocol", "%q is not one of grpc, http", c.Protocol)
	}
	if c.TLS.Insecure {
		for _, f := range []struct{ name, val string }{{"ca_file", c.TLS.CAFile}, {"cert_file", c.TLS.CertFile}, {"key_file", c.TLS.KeyFile}, {"server_name", c.TLS.ServerName}} {
			if f.val != "" {
				v.add("collector.tls."+f.name, "is set but tls.insecure is true, so it would be ignored")
			}
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.add("collector.tls.cert_file", "cert_file and key_file must be set together")
	}
	if c.Token != "" && c.TokenFile != "" {
		v.add("collector.token", "set token or token_file, not both")
	} else if _, err := c.BearerToken(); err != nil {
		v.add("collector.token_file", "%v", err)
	}
	if c.ExportInterval == 0 {
		c.ExportInterval = DefaultExportInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultExportTimeout
	}
	if c.ExportInterval < 0 {
		v.add("collector.export_interval", "%s must be positive", c.ExportInterval)
	}
	if c.Timeout < 0 {
		v.add("collector.timeout", "%s must be positive", c.Timeout)
	}
}

func (q *Queue) validate(v *validator) {
	if q.Dir == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"max_size", q.MaxSize != 0}, {"max_age", q.MaxAge != 0}, {"replay_per_export", q.ReplayPerExport != 0}} {
			if f.set {
				v.add("queue."+f.name, "is set but queue.dir is empty, so there is no queue")
			}
		}
		return
	}
	if q.MaxSize == 0 {
		q.MaxSize = DefaultQueueMaxSize
	}
	if q.MaxAge == 0 {
		q.MaxAge = DefaultQueueMaxAge
	}
	if q.ReplayPerExport == 0 {
		q.ReplayPerExport = DefaultQueueReplayPerExport
	}
	if q.MaxSize < ByteSize(units.MiB) {
		v.add("queue.max_size", "%s is less than 1MiB, too small for a backlog of exports", q.MaxSize)
	}
	if q.MaxAge < 0 {
		v.add("queue.max_age", "%s must be positive", q.MaxAge)
	}
	if q.ReplayPerExport < 0 {
		v.add("queue.replay_per_export", "%d must be positive", q.ReplayPerExport)
	}
}

func (t *Target) validate(v *validator, p string, defaults Schedule, names map[string]bool) {
	checkName(v, p+".name", t.Name, names)
	if t.DstCity == "" {
		v.add(p+".dst_city", "is required")
	} else if city, ok := v.gaz.City(t.DstCity); ok {
		t.DstCity = city.Name
	} else {
		v.add(p+".dst_city", "%q is not a city in the gazetteer (known: %s)", t.DstCity, cityNames(v.gaz))
	}
	switch {
	case t.Method == "":
		v.add(p+".method", "is required (%s)", strings.Join(Methods, ", "))
	case !slices.Contains(Methods, t.Method):
		v.add(p+".method", "%q is not one of %s", t.Method, strings.Join(Methods, ", "))
	default:
		if err := CheckAddress(t.Method, t.Address); err != nil {
			v.add(p+".address", "%v", err)
		}
	}
	if t.Method == MethodDNS {
		if field, err := CheckQuery(t.QueryName, &t.QueryType); err != nil {
			v.add(p+"."+field, "%v", err)
		}
	} else {
		if t.QueryName != "" {
			v.add(p+".query_name", "applies only to method dns")
		}
		if t.QueryType != "" {
			v.add(p+".query_type", "applies only to method dns")
		}
	}
	if t.Method != MethodHTTP {
		if t.ExpectStatus != 0 {
			v.add(p+".expect_status", "applies only to method http")
		}
		if t.InsecureSkipVerify {
			v.add(p+".insecure_skip_verify", "applies only to method http")
		}
	} else if t.ExpectStatus != 0 && (t.ExpectStatus < 100 || t.ExpectStatus > 599) {
		v.add(p+".expect_status", "%d is not an HTTP status code", t.ExpectStatus)
	}
	if t.Interval == 0 {
		t.Interval = defaults.Interval
	}
	if t.Timeout == 0 {
		t.Timeout = defaults.Timeout
	}
	checkSchedule(v, p, t.Interval, t.Timeout)
	t.checkCount(v, p)
}

func checkName(v *validator, path, name string, seen map[string]bool) {
	if err := metricmodel.CheckName(name); err != nil {
		v.add(path, "%v", err)
	} else if seen[name] {
		v.add(path, "%q is used twice", name)
	}
	seen[name] = true
}

// checkSchedule insists on timeout < interval: a run that may last longer
// than the interval would make the schedule a lie (runs never overlap, so
// they would silently come less often than configured).
func checkSchedule(v *validator, p string, interval, timeout time.Duration) {
	if interval < 10*time.Millisecond {
		v.add(p+".interval", "%s is too short (at least 10ms)", interval)
	}
	if timeout <= 0 {
		v.add(p+".timeout", "%s must be positive", timeout)
	} else if timeout > MaxTimeout {
		v.add(p+".timeout", "%s is longer than %s; the collector refuses latencies over 60000 ms", timeout, MaxTimeout)
	} else if timeout >= interval {
		v.add(p+".timeout", "%s must be shorter than the interval %s", timeout, interval)
	}
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	if host == "" {
		return fmt.Errorf("host is empty")
	}
	return checkPort(port)
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func cityNames(g *gazetteer.Gazetteer) string {
	var names []string
	for _, c := range g.Cities() {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// lineOf finds the line of a field path such as "targets[2].method" in the
// YAML tree. A field that is missing gets the line of its nearest parent,
// which is where the operator has to add it.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		next := mappingValue(n, key)
		if next == nil {
			return line
		}
		n, line = next.value, next.key.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

type keyValue struct{ key, value *yaml.Node }

func mappingValue(n *yaml.Node, key string) *keyValue {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return &keyValue{n.Content[i], n.Content[i+1]}
		}
	}
	return nil
}
