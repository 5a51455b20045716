package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	cfg, err := Load("testdata/probe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Probe.ID != "mnl-01" || cfg.Probe.City != "Manila" {
		t.Errorf("probe = %+v, want id mnl-01 and canonical city Manila", cfg.Probe)
	}
	if u := cfg.Uplinks[0]; u.Carrier != "Globe" || u.NetworkType != "5g" || u.BindAddress != "127.0.1.1" {
		t.Errorf("uplinks[0] = %+v, want canonical Globe/5g bound to 127.0.1.1", u)
	}
	if u := cfg.Uplinks[1]; u.Carrier != "PLDT" || u.NetworkType != "fiber" {
		t.Errorf("uplinks[1] = %+v, want PLDT/fiber", u)
	}
	want := []struct {
		dst               string
		interval, timeout time.Duration
	}{{"Davao", 10 * time.Second, 2 * time.Second}, {"Manila", 15 * time.Second, 5 * time.Second}, {"Baguio", 15 * time.Second, 5 * time.Second}}
	for i, w := range want {
		tg := cfg.Targets[i]
		if tg.DstCity != w.dst || tg.Interval != w.interval || tg.Timeout != w.timeout {
			t.Errorf("targets[%d] = %+v, want dst %s interval %s timeout %s", i, tg, w.dst, w.interval, w.timeout)
		}
	}
	if cfg.Collector.ExportInterval != 15*time.Second || cfg.Collector.Protocol != "grpc" {
		t.Errorf("collector = %+v", cfg.Collector)
	}
}

func TestQueueDefaults(t *testing.T) {
	cfg, err := Parse("q.yaml", []byte(strings.Replace(valid, "targets:\n", "queue: {dir: /var/lib/bantay-probe}\nmetrics: {listen: 127.0.0.1:9464}\ntargets:\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.Queue; q.MaxSize != 64<<20 || q.MaxAge != 25*time.Minute || q.ReplayPerExport != 20 {
		t.Errorf("queue defaults %+v", q)
	}
	cfg, err = Parse("q.yaml", []byte(strings.Replace(valid, "targets:\n", "queue: {dir: q, max_size: 1GiB, max_age: 10m}\ntargets:\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.Queue; q.MaxSize != 1<<30 || q.MaxAge != 10*time.Minute {
		t.Errorf("queue %+v, want 1GiB and 10m", q)
	}
	cfg, _ = Parse("q.yaml", []byte(valid))
	if cfg.Queue != (Queue{}) || cfg.Metrics.Listen != "" {
		t.Errorf("without queue.dir the queue is off and metrics are off: %+v %+v", cfg.Queue, cfg.Metrics)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte(`
probe: {id: dvo-01, city: Davao}
collector: {endpoint: "collector.example:4317"}
uplinks: [{name: dito, carrier: DITO, network_type: LTE}]
targets: [{name: t, dst_city: Manila, method: tcp, address: "127.0.0.1:1"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Probe.Environment != DefaultEnvironment || cfg.Collector.Protocol != ProtocolGRPC ||
		cfg.Collector.ExportInterval != DefaultExportInterval || cfg.Collector.Timeout != DefaultExportTimeout ||
		cfg.Targets[0].Interval != DefaultInterval || cfg.Targets[0].Timeout != DefaultTimeout {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

// valid is a minimal good config; each bad case replaces one line.
const valid = `probe:
  id: mnl-01
  city: Manila
collector:
  endpoint: 127.0.0.1:4317
  tls: {insecure: true}
uplinks:
  - name: globe-5g
    carrier: Globe
    network_type: 5g
    bind_address: 127.0.1.1
targets:
  - name: a
    dst_city: Davao
    method: udp
    address: 127.0.0.1:7001
  - name: b
    dst_city: Manila
    method: http
    address: http://127.0.0.1:8081/health
  - name: c
    dst_city: Baguio
    method: tcp
    address: 127.0.0.1:7002
`

func TestValidationErrors(t *testing.T) {
	if _, err := Parse("probe.yaml", []byte(valid)); err != nil {
		t.Fatalf("base config must be valid: %v", err)
	}
	cases := []struct {
		name, old, new string
		want           string // substring: file:line: path: message
	}{
		{"missing id", "  id: mnl-01\n", "", "probe.yaml:1: probe.id: a probe id is required"},
		{"bad id", "id: mnl-01", "id: mnl/01", "probe.yaml:2: probe.id: probe id \"mnl/01\" must start with a letter or digit and contain only"},
		{"unknown city", "city: Manila", "city: Gotham", "probe.yaml:3: probe.city: \"Gotham\" is not a city"},
		{"typo key", "city: Manila", "cty: Manila", "probe.yaml:3: probe.cty: is not a known field (known: id, city, environment)"},
		{"typo key in flow mapping", "targets:\n", "defaults: {intervall: 5s}\ntargets:\n", "probe.yaml:12: defaults.intervall: is not a known field (known: interval, timeout)"},
		{"typo key in a list item", "    method: tcp", "    methd: tcp", "probe.yaml:23: targets[2].methd: is not a known field (known: name, dst_city, method,"},
		{"bad protocol", "  tls: {insecure: true}", "  protocol: amqp\n  tls: {insecure: true}", "probe.yaml:6: collector.protocol: \"amqp\" is not one of grpc, http"},
		{"grpc with scheme", "endpoint: 127.0.0.1:4317", "endpoint: http://127.0.0.1:4317", "probe.yaml:5: collector.endpoint:"},
		{"http plain without insecure", "  endpoint: 127.0.0.1:4317\n  tls: {insecure: true}", "  endpoint: http://127.0.0.1:4318\n  protocol: http", "collector.endpoint: \"http://127.0.0.1:4318\" is plain http but tls.insecure is false"},
		{"insecure with ca", "tls: {insecure: true}", "tls: {insecure: true, ca_file: ca.pem}", "probe.yaml:6: collector.tls.ca_file: is set but tls.insecure is true"},
		{"token twice", "  tls: {insecure: true}", "  tls: {insecure: true}\n  token: a\n  token_file: /x", "probe.yaml:7: collector.token: set token or token_file, not both"},
		{"no uplinks", "uplinks:\n  - name: globe-5g\n    carrier: Globe\n    network_type: 5g\n    bind_address: 127.0.1.1\n", "", "probe.yaml: uplinks: at least one uplink is required"},
		{"bad carrier", "carrier: Globe", "carrier: Telstra", "probe.yaml:9: uplinks[0].carrier: \"Telstra\" is not a known carrier"},
		{"bad network type", "network_type: 5g", "network_type: 3g", "probe.yaml:10: uplinks[0].network_type: \"3g\" is not a known network type"},
		{"bad bind address", "bind_address: 127.0.1.1", "bind_address: eth0", "probe.yaml:11: uplinks[0].bind_address: \"eth0\" is not an IP address"},
		{"same bind address twice", "targets:\n", "  - {name: b, carrier: PLDT, network_type: fiber, bind_address: 127.0.1.1}\ntargets:\n", "probe.yaml:12: uplinks[1].bind_address: 127.0.1.1 is also the bind_address of uplinks[0]"},
		{"same uplink kind twice", "targets:\n", "  - {name: b, carrier: Globe Telecom, network_type: NR}\ntargets:\n", "probe.yaml:12: uplinks[1]: carrier Globe with network_type 5g is already uplinks[0]"},
		{"bad method", "method: tcp", "method: ping", "probe.yaml:23: targets[2].method: \"ping\" is not one of icmp, tcp, http, dns, udp"},
		{"icmp with a port", "method: tcp\n    address: 127.0.0.1:7002", "method: icmp\n    address: 127.0.0.1:7002", "probe.yaml:24: targets[2].address: \"127.0.0.1:7002\": for method icmp give a host name or IP address (no port, no brackets)"},
		{"icmp with brackets", "method: tcp\n    address: 127.0.0.1:7002", "method: icmp\n    address: \"[::1]\"", "probe.yaml:24: targets[2].address: \"[::1]\": for method icmp give a host name or IP address (no port, no brackets)"},
		{"count too large", "address: 127.0.0.1:7001", "address: 127.0.0.1:7001\n    count: 10001", "probe.yaml:17: targets[0].count: 10001 is not 1..10000"},
		{"count does not fit", "address: 127.0.0.1:7001", "address: 127.0.0.1:7001\n    interval: 20ms\n    timeout: 15ms\n    count: 10", "probe.yaml:19: targets[0].count: 10 probes do not fit between the timeout 15ms and the interval 20ms"},
		{"dns without query_name", "method: tcp\n    address: 127.0.0.1:7002", "method: dns\n    address: 127.0.0.1:53", "probe.yaml:21: targets[2].query_name: is required for method dns"},
		{"dns bad query_type", "method: tcp\n    address: 127.0.0.1:7002", "method: dns\n    address: 127.0.0.1:53\n    query_name: example.ph\n    query_type: AAAAA", "probe.yaml:26: targets[2].query_type: \"AAAAA\" is not a DNS record type"},
		{"query_name on tcp", "address: 127.0.0.1:7002", "address: 127.0.0.1:7002\n    query_name: example.ph", "probe.yaml:25: targets[2].query_name: applies only to method dns"},
		{"bad dst city", "dst_city: Baguio", "dst_city: Atlantis", "probe.yaml:22: targets[2].dst_city: \"Atlantis\" is not a city"},
		{"duplicate target", "name: c", "name: a", "probe.yaml:21: targets[2].name: \"a\" is used twice"},
		{"bad udp address", "address: 127.0.0.1:7001", "address: 127.0.0.1", "probe.yaml:16: targets[0].address: \"127.0.0.1\": not host:port"},
		{"bad port", "address: 127.0.0.1:7002", "address: 127.0.0.1:99999", "probe.yaml:24: targets[2].address: \"127.0.0.1:99999\": port \"99999\" is not a number"},
		{"bad http url", "address: http://127.0.0.1:8081/health", "address: ftp://x/", "probe.yaml:20: targets[1].address: \"ftp://x/\" is not an http:// or https:// URL"},
		{"expect_status on tcp", "address: 127.0.0.1:7002", "address: 127.0.0.1:7002\n    expect_status: 200", "probe.yaml:25: targets[2].expect_status: applies only to method http"},
		{"timeout over interval", "address: 127.0.0.1:7001", "address: 127.0.0.1:7001\n    interval: 1s\n    timeout: 2s", "probe.yaml:18: targets[0].timeout: 2s must be shorter than the interval 1s"},
		{"timeout over the cap", "address: 127.0.0.1:7001", "address: 127.0.0.1:7001\n    interval: 5m\n    timeout: 90s", "probe.yaml:18: targets[0].timeout: 1m30s is longer than 1m0s"},
		{"ambiguous gazetteer alias", "targets:\n", "gazetteer:\n  cities: [{name: Tagum, region: Davao Region, island_group: Mindanao, latitude: 7.45, longitude: 125.8, aliases: [Davao City]}]\ntargets:\n", "probe.yaml:12: gazetteer: city \"Tagum\": name \"Davao City\" is already used by city \"Davao\""},
		{"queue size without a dir", "targets:\n", "queue: {max_size: 1GiB}\ntargets:\n", "probe.yaml:12: queue.max_size: is set but queue.dir is empty"},
		{"queue too small", "targets:\n", "queue: {dir: /var/lib/q, max_size: 100KiB}\ntargets:\n", "probe.yaml:12: queue.max_size: 100KiB is less than 1MiB"},
		{"queue size not a size", "targets:\n", "queue: {dir: /var/lib/q, max_size: lots}\ntargets:\n", "probe.yaml:12: \"lots\" is not a size such as 64MiB or 1GiB"},
		{"metrics on all interfaces by accident", "targets:\n", "metrics: {listen: \":9464\"}\ntargets:\n", "probe.yaml:12: metrics.listen: \":9464\": host is empty"},
		{"gazetteer typo", "targets:\n", "gazetteer:\n  city: []\ntargets:\n", "probe.yaml:13: gazetteer.city: is not a known field (known: cities, carriers, network_types)"},
		{"bad duration", "address: 127.0.0.1:7001", "address: 127.0.0.1:7001\n    interval: soon", "probe.yaml:17: cannot unmarshal !!str `soon` into time.Duration"},
		{"missing target name", "  - name: b\n", "  -\n", "probe.yaml:18: targets[1].name: a name is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(valid, tc.old) {
				t.Fatalf("test bug: %q not in base config", tc.old)
			}
			_, err := Parse("probe.yaml", []byte(strings.Replace(valid, tc.old, tc.new, 1)))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	cfg := &Config{
		Probe:     Probe{ID: "dvo-01", City: "Davao City"},
		Collector: Collector{Endpoint: "127.0.0.1:4317", TLS: TLS{Insecure: true}},
		Uplinks:   []Uplink{{Name: "dito", Carrier: "dito", NetworkType: "lte"}},
		Targets:   []Target{{Name: "t", DstCity: "mnl", Method: "udp", Address: "127.0.0.1:7001"}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("second Validate: %v", err)
	}
	if cfg.Probe.City != "Davao" || cfg.Uplinks[0].Carrier != "DITO" || cfg.Targets[0].DstCity != "Manila" || cfg.Targets[0].Interval != DefaultInterval {
		t.Errorf("not canonicalised and defaulted: %+v", cfg)
	}
	cfg.Targets[0].Method = "ping"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "probe config: targets[0].method") {
		t.Errorf("bad method: %v", err)
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	bad := strings.Replace(strings.Replace(valid, "carrier: Globe", "carrier: X", 1), "method: tcp", "method: y", 1)
	_, err := Parse("probe.yaml", []byte(bad))
	e, ok := err.(*Error)
	if !ok || len(e.Problems) != 2 {
		t.Fatalf("want 2 problems in one *Error, got %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Parse("two.yaml", []byte(valid+"---\nprobe: {id: x}\n")); err == nil || !strings.Contains(err.Error(), "two.yaml:25: holds more than one YAML document") {
		t.Errorf("two documents: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), empty+": file is empty") {
		t.Errorf("empty file: %v", err)
	}
}

// TestGazetteerExtension: a place, carrier or network type the operator
// added to the collector's gazetteer can be added to the probe's the same
// way, and then is accepted and canonicalised like a shipped one.
func TestGazetteerExtension(t *testing.T) {
	ext := strings.Replace(valid, "targets:\n", `gazetteer:
  cities:
    - {name: Puerto Princesa, region: MIMAROPA, island_group: Luzon, latitude: 9.7392, longitude: 118.7353, aliases: [PPS]}
  carriers:
    - {name: Sky, aliases: [SkyCable]}
  network_types:
    - {name: satellite, aliases: [VSAT]}
targets:
`, 1)
	ext = strings.Replace(ext, "dst_city: Baguio", "dst_city: pps", 1)
	ext = strings.Replace(ext, "    bind_address: 127.0.1.1\n", "    bind_address: 127.0.1.1\n  - {name: sky, carrier: skycable, network_type: vsat}\n", 1)
	cfg, err := Parse("probe.yaml", []byte(ext))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Targets[2].DstCity; got != "Puerto Princesa" {
		t.Errorf("dst_city %q, want the added city's canonical name", got)
	}
	if u := cfg.Uplinks[1]; u.Carrier != "Sky" || u.NetworkType != "satellite" {
		t.Errorf("uplink %+v, want the added carrier and network type", u)
	}
	// Without the extension the same names are errors.
	if _, err := Parse("probe.yaml", []byte(strings.Replace(valid, "dst_city: Baguio", "dst_city: pps", 1))); err == nil || !strings.Contains(err.Error(), `targets[2].dst_city: "pps" is not a city`) {
		t.Errorf("unknown city without the extension: %v", err)
	}
}

// TestTokenFileChecked: Parse (so `bantay-probe validate`) refuses a
// token_file that run would refuse, with the same words.
func TestTokenFileChecked(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 1<<20), 0o600)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(dir, "missing"), "probe.yaml:7: collector.token_file: open " + filepath.Join(dir, "missing") + ": no such file"},
		{empty, "probe.yaml:7: collector.token_file: " + empty + " is empty"},
		{dir, "probe.yaml:7: collector.token_file: " + dir + " is a directory, not a token file"},
		{"/dev/zero", "probe.yaml:7: collector.token_file: /dev/zero is not a regular file"},
		{big, "probe.yaml:7: collector.token_file: " + big + " is larger than 4096 bytes"},
	} {
		_, err := Parse("probe.yaml", []byte(strings.Replace(valid, "  tls: {insecure: true}\n", "  tls: {insecure: true}\n  token_file: "+tc.file+"\n", 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token_file %s: %v, want %q", tc.file, err, tc.want)
		}
	}
	cfg, err := Parse("probe.yaml", []byte(strings.Replace(valid, "  tls: {insecure: true}\n", "  tls: {insecure: true}\n  token_file: "+good+"\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := cfg.Collector.BearerToken(); tok != "s3cret" || err != nil {
		t.Errorf("BearerToken() = %q, %v; want the file's token, trimmed", tok, err)
	}
}

func TestICMPAndDNSTargets(t *testing.T) {
	cfg, err := Parse("probe.yaml", []byte(strings.Replace(valid, "method: tcp\n    address: 127.0.0.1:7002",
		"method: dns\n    address: 127.0.0.1:53\n    query_name: example.ph\n    query_type: aaaa\n  - name: d\n    dst_city: Davao\n    method: icmp\n    address: 127.0.0.1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	dnsT, icmpT := cfg.Targets[2], cfg.Targets[3]
	// Rounds of five where loss and jitter need several packets, one
	// probe where each is a whole exchange.
	for i, want := range []int{5, 1, 1, 5} {
		if got := cfg.Targets[i].Count; got != want {
			t.Errorf("%s target: count %d, want the default %d", cfg.Targets[i].Method, got, want)
		}
	}
	if dnsT.Method != MethodDNS || dnsT.QueryType != "AAAA" || icmpT.Method != MethodICMP || icmpT.Address != "127.0.0.1" {
		t.Errorf("targets %+v, %+v: want a dns target asking AAAA and an icmp target", dnsT, icmpT)
	}
}

// TestDefaultCountThatDoesNotFit: a default round of five that cannot fit
// its target's schedule is an error that says the five was the default.
func TestDefaultCountThatDoesNotFit(t *testing.T) {
	_, err := Parse("probe.yaml", []byte(strings.Replace(valid, "    address: 127.0.0.1:7001\n",
		"    address: 127.0.0.1:7001\n    interval: 12ms\n    timeout: 10ms\n", 1)))
	want := "targets[0].count: 5 probes do not fit between the timeout 10ms and the interval 12ms (at least 1ms apart) (5 is the default for udp; set count, or widen the gap)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}
