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
	"strings"
	"time"

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

// TLS configures the connection to the collector.
type TLS struct {
	// Insecure sends OTLP in plain text (loopback demos, tests).
	Insecure   bool   `yaml:"insecure"`
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
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
	// takes them); default 1. See RoundSpacing.
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
		return nil, &Error{File: name, Problems: decodeProblems(err)}
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
// type config.Target") into problems without repeating "yaml:".
func decodeProblems(err error) []Problem {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]Problem, 0, len(te.Errors))
		for _, msg := range te.Errors {
			out = append(out, lineProblem(msg))
		}
		return out
	}
	return []Problem{lineProblem(strings.TrimPrefix(err.Error(), "yaml: "))}
}

func lineProblem(msg string) Problem {
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		if i := strings.Index(msg, ":"); i >= 0 {
			return Problem{Line: line, Message: strings.TrimSpace(msg[i+1:])}
		}
	}
	return Problem{Message: msg}
}
