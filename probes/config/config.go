// Package config loads and validates the bantay-probe YAML configuration.
//
// Loading is strict: unknown keys are errors (a typo such as "intervall"
// must not silently fall back to a default), and every validation problem
// names the file, the line where the YAML has one, and the field path, e.g.
// "probe.yaml:17: targets[2].method: "ping" is not one of icmp, tcp, http, dns, udp".
// All problems are reported at once so an operator fixes a config in one pass.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Probe methods a target can use.
const (
	MethodTCP  = "tcp"
	MethodHTTP = "http"
	MethodUDP  = "udp"
	MethodICMP = "icmp"
	MethodDNS  = "dns"
)

// Collector protocols.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Defaults applied when a field is left out.
const (
	DefaultExportInterval = 15 * time.Second
	DefaultExportTimeout  = 10 * time.Second
	DefaultInterval       = 15 * time.Second
	DefaultTimeout        = 5 * time.Second
	DefaultEnvironment    = "production"

	// DefaultQueueMaxAge stays under the shipped collector's
	// out_of_order_window (30m, collector/config/bantay.yaml): a queued
	// point older than that window would be refused by the store when it is
	// finally delivered, so it is dropped (and counted) here instead; the
	// 5 minutes left cover a replay that takes a while.
	DefaultQueueMaxAge          = 25 * time.Minute
	DefaultQueueMaxSize         = ByteSize(64 * units.MiB)
	DefaultQueueReplayPerExport = 20

	// MaxTimeout bounds a target's timeout. A latency probe that waits
	// longer measures nothing useful, and the collector's citytag
	// processor refuses latencies over 60 000 ms by default
	// (max_latency_ms); with cumulative histograms one such value would
	// keep the series' max over the limit, so every later point of it
	// would be refused until the probe restarts.
	MaxTimeout = 60 * time.Second
)

// Config is a whole probe configuration. After Load or Parse succeeds every
// name in it (city, carrier, network type, dst_city) is the gazetteer's
// canonical spelling and every target has its interval and timeout set.
type Config struct {
	Probe     Probe     `yaml:"probe"`
	Collector Collector `yaml:"collector"`
	Uplinks   []Uplink  `yaml:"uplinks"`
	Defaults  Schedule  `yaml:"defaults"`
	Targets   []Target  `yaml:"targets"`
	// Gazetteer adds cities, carriers and network types to the shipped
	// gazetteer, in the same form as the collector's citytag processor, so
	// a probe may name a place the operator added there.
	Gazetteer Gazetteer `yaml:"gazetteer"`

	// Queue keeps what the collector did not acknowledge on disk.
	Queue Queue `yaml:"queue"`
	// Metrics serves the probe's own metrics over HTTP.
	Metrics Metrics `yaml:"metrics"`
	// Recording chooses the latency histograms and which samples carry an
	// exemplar (recording.go).
	Recording Recording `yaml:"recording"`
	// Mesh takes targets from the collector's mesh registry (mesh.go).
	Mesh Mesh `yaml:"mesh"`
	// Reflector answers other sites' echo probes.
	Reflector Reflector `yaml:"reflector"`

	// File is the path the config was read from (or the name given to Parse).
	File string `yaml:"-"`
}

// Gazetteer extends the shipped gazetteer (internal/gazetteer). An entry
// whose name matches a shipped one replaces it. Keep it in step with the
// citytag processor's cities, carriers and network_types: the collector is
// the authority and rejects what its own gazetteer does not know.
type Gazetteer struct {
	Cities       []gazetteer.City `yaml:"cities"`
	Carriers     []gazetteer.Term `yaml:"carriers"`
	NetworkTypes []gazetteer.Term `yaml:"network_types"`
}

// Probe identifies this probe to the collector.
type Probe struct {
	// ID is the probe's identity (service.instance.id); the collector's
	// registry is keyed by it.
	ID string `yaml:"id"`
	// City is the city the probe declares it is in.
	City string `yaml:"city"`
	// Environment becomes deployment.environment.name.
	Environment string `yaml:"environment"`
}

// Collector says where and how to send OTLP.
type Collector struct {
	// Endpoint is host:port for grpc, or a base URL (http://host:4318) for
	// http, to which the exporter appends /v1/metrics.
	Endpoint string `yaml:"endpoint"`
	Protocol string `yaml:"protocol"`
	TLS      TLS    `yaml:"tls"`
	// TokenFile holds a bearer token sent as "authorization: Bearer <token>".
	TokenFile string `yaml:"token_file"`
	// Token is the inline alternative to TokenFile.
	Token          string        `yaml:"token"`
	ExportInterval time.Duration `yaml:"export_interval"`
	Timeout        time.Duration `yaml:"timeout"`
}

// maxTokenFile bounds what is read of a token file: a bearer token is a
// few dozen bytes, and a token_file pointing at a device must not hang or
// exhaust the probe.
const maxTokenFile = 4 << 10

// BearerToken returns the token to send (from token_file when set, read
// now and trimmed), or "" for none. Validation calls it too, so `validate`
// refuses the token files `run` would: missing, unreadable, not a regular
// file, too large or empty. The error names no field; callers put it under
// collector.token_file.
func (c Collector) BearerToken() (string, error) {
	if c.TokenFile == "" {
		return c.Token, nil
	}
	f, err := os.Open(c.TokenFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return "", err
	} else if st.IsDir() {
		return "", fmt.Errorf("%s is a directory, not a token file", c.TokenFile)
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", c.TokenFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("%s is larger than %d bytes; a bearer token is one line", c.TokenFile, maxTokenFile)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("%s is empty", c.TokenFile)
	}
	return token, nil
}

// TLS configures the connection to the collector.
type TLS struct {
	// Insecure sends OTLP in plain text (loopback demos, tests).
	Insecure   bool   `yaml:"insecure"`
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Queue is the store-and-forward queue: while the collector is unreachable
// (or refuses with a retryable error) every export is kept on disk, one
// bbolt file per uplink, and delivered oldest first when it is back.
type Queue struct {
	// Dir holds the queue files; empty means no queue (an outage then
	// costs resolution, and a probe stopped during one loses what it
	// measured since the last delivery).
	Dir string `yaml:"dir"`
	// MaxSize bounds each uplink's queued payload bytes (64MiB, 1GiB …);
	// the oldest requests are dropped first.
	MaxSize ByteSize `yaml:"max_size"`
	// MaxAge drops requests measured longer ago than this. Keep it at most
	// the collector's out_of_order_window.
	MaxAge time.Duration `yaml:"max_age"`
	// ReplayPerExport bounds the queued requests sent after each
	// successful export of fresh data, so the backlog drains at a bounded
	// rate and never holds up the live data.
	ReplayPerExport int `yaml:"replay_per_export"`
}

// ByteSize is a size in bytes, written with a base-2 unit: 64MiB, 1GiB
// (64MB means the same, as in Prometheus's retention size).
type ByteSize units.Base2Bytes

// UnmarshalYAML reports a bad size with its line, as yaml reports a bad
// duration.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := units.ParseBase2Bytes(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a size such as 64MiB or 1GiB", n.Line, n.Value)}}
	}
	*b = ByteSize(v)
	return nil
}

func (b ByteSize) String() string { return units.Base2Bytes(b).String() }

// Metrics is the probe's own metrics endpoint.
type Metrics struct {
	// Listen is host:port for /metrics in the Prometheus text format;
	// empty turns it off.
	Listen string `yaml:"listen"`
}

// Uplink is one way out of the probe site (a SIM, a fiber line). Each
// uplink is its own OTel resource.
type Uplink struct {
	Name        string `yaml:"name"`
	Carrier     string `yaml:"carrier"`
	NetworkType string `yaml:"network_type"`
	// BindAddress is the local source address of every probe dial on this
	// uplink; empty leaves the choice to the kernel's routing table.
	BindAddress string `yaml:"bind_address"`
}

// Schedule holds the per-target defaults.
type Schedule struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
}

// Target is one thing to measure, on every uplink.
type Target struct {
	Name    string `yaml:"name"`
	DstCity string `yaml:"dst_city"`
	Method  string `yaml:"method"`
	// Address is host:port for tcp and udp, a URL for http.
	Address  string        `yaml:"address"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// ExpectStatus is the HTTP status that counts as success; 0 accepts
	// any 2xx or 3xx.
	ExpectStatus int `yaml:"expect_status"`
	// InsecureSkipVerify skips certificate checks for https targets
	// (internal servers with self-signed certificates).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Count is the number of probes in each run (a round, as SmokePing
	// takes them); default DefaultCount(Method). See RoundSpacing.
	Count int `yaml:"count"`
	// QueryName is the name a dns target asks its resolver (Address) for.
	QueryName string `yaml:"query_name"`
	// QueryType is the record type of a dns query; default A.
	QueryType string `yaml:"query_type"`
}

// Problem is one thing wrong with a config.
type Problem struct {
	// Path is the field path, e.g. "targets[2].method".
	Path string
	// Line is the 1-based line in the file, 0 when unknown.
	Line    int
	Message string
}

// Error is every problem found in one config file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		if p.Path != "" {
			b.WriteString(": ")
			b.WriteString(p.Path)
		}
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Load reads, decodes and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read probe config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a config; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Problems: []Problem{{Message: "file is empty"}}}
		}
		var root yaml.Node
		// Only to name the path of an unknown field; a syntax error
		// leaves root empty and the message as yaml wrote it.
		_ = yaml.Unmarshal(data, &root)
		return nil, &Error{File: name, Problems: decodeProblems(err, &root)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{File: name, Problems: []Problem{{Line: extra.Line, Message: "holds more than one YAML document; a probe config is one document"}}}
	}
	cfg.File = name
	var root yaml.Node
	// The strict decode above succeeded, so this one cannot fail; the node
	// tree only serves line numbers for validation messages.
	_ = yaml.Unmarshal(data, &root)
	if probs := cfg.validate(); len(probs) > 0 {
		for i := range probs {
			probs[i].Line = lineOf(&root, probs[i].Path)
		}
		return nil, &Error{File: name, Problems: probs}
	}
	return &cfg, nil
}

// Validate checks a Config built in code (Load and Parse already did),
// filling defaults and canonical names as Parse does. It is idempotent.
func (c *Config) Validate() error {
	if probs := c.validate(); len(probs) > 0 {
		name := c.File
		if name == "" {
			name = "probe config"
		}
		return &Error{File: name, Problems: probs}
	}
	return nil
}

// decodeProblems turns yaml's errors ("line 7: field intervall not found in
// type config.Schedule") into problems without repeating "yaml:", naming an
// unknown field by its path in the file (defaults.intervall) and the
// fields allowed there, not by a Go type the operator never sees.
func decodeProblems(err error, root *yaml.Node) []Problem {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]Problem, 0, len(te.Errors))
		for _, msg := range te.Errors {
			out = append(out, lineProblem(msg, root))
		}
		return out
	}
	return []Problem{lineProblem(strings.TrimPrefix(err.Error(), "yaml: "), root)}
}

// unknownField matches yaml's message for a key with no struct field.
var unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func lineProblem(msg string, root *yaml.Node) Problem {
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n != 1 {
		return Problem{Message: msg}
	}
	p := Problem{Line: line, Message: strings.TrimSpace(msg[strings.Index(msg, ":")+1:])}
	if m := unknownField.FindStringSubmatch(p.Message); m != nil {
		if path, ok := keyPath(root, "", line, m[1]); ok {
			p.Path = path
			p.Message = "is not a known field"
			if known := fieldsAt(path); len(known) > 0 {
				p.Message += " (known: " + strings.Join(known, ", ") + ")"
			}
		}
	}
	return p
}

// keyPath finds the mapping key named key on line in the YAML tree and
// returns its field path, e.g. "targets[2].methd".
func keyPath(n *yaml.Node, prefix string, line int, key string) (string, bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, ok := keyPath(c, prefix, line, key); ok {
				return p, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			if k.Line == line && k.Value == key {
				return p, true
			}
			if p, ok := keyPath(v, p, line, key); ok {
				return p, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, ok := keyPath(c, fmt.Sprintf("%s[%d]", prefix, i), line, key); ok {
				return p, true
			}
		}
	}
	return "", false
}

// fieldsAt lists the YAML keys allowed beside the last element of path,
// from the Config type's yaml tags; nil if the path leaves the type.
func fieldsAt(path string) []string {
	t := reflect.TypeFor[Config]()
	parts := strings.Split(path, ".")
	for _, part := range parts[:len(parts)-1] {
		name, _, _ := strings.Cut(part, "[")
		f, ok := fieldByTag(t, name)
		if !ok {
			return nil
		}
		t = f.Type
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for f := range t.Fields() {
		if tag := yamlName(f); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for f := range t.Fields() {
		if yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlName is the key a struct field is decoded from ("" for none).
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name) // yaml.v3's default
	}
	return name
}
