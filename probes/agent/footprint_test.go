package agent

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/prober"
)

// footprintConfig is probefootprint's probe configuration: n udp targets in
// rounds of 5, one uplink, exporting to collector. The targets are never
// probed here (nothing Runs); their addresses only have to be valid.
func footprintConfig(tb testing.TB, collector string, n int) *config.Config {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `probe: {id: footprint-01, city: Manila}
collector: {endpoint: %q, tls: {insecure: true}, export_interval: 1h, timeout: 10s}
uplinks: [{name: pldt-fiber, carrier: PLDT, network_type: fiber}]
targets:
`, collector)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: t%05d, dst_city: Davao, method: udp, address: \"127.77.%d.%d:7001\", count: 5}\n", i, i/250, i%250+1)
	}
	cfg, err := config.Parse("footprint.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// discardSink is an OTLP/gRPC endpoint that acknowledges every request
// without decoding it, so that a benchmark in the same process measures the
// probe's side of an export, not the sink's.
type discardSink struct {
	colmetricspb.UnimplementedMetricsServiceServer
}

func (discardSink) Export(context.Context, *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

// undecoded is the sink's codec: requests are read off the wire and left
// undecoded; answers are marshalled as usual.
type undecoded struct{}

func (undecoded) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
func (undecoded) Unmarshal([]byte, any) error   { return nil }
func (undecoded) Name() string                  { return "proto" }

func startDiscardSink(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(256<<20), grpc.ForceServerCodec(undecoded{}))
	colmetricspb.RegisterMetricsServiceServer(srv, discardSink{})
	go srv.Serve(l)
	tb.Cleanup(srv.Stop)
	return l.Addr().String()
}

// healthyRound is a round of 5 answered loopback probes, RTTs spread over
// the histogram's lowest buckets as on loopback.
func healthyRound(i int) *prober.Round {
	r := &prober.Round{Sent: 5}
	for k := range 5 {
		r.Results = append(r.Results, prober.Result{RTT: time.Duration(20+(i*7+k*13)%900) * time.Microsecond})
	}
	return r
}

// BenchmarkExport1000 is one export of an uplink with 1,000 udp targets,
// each with a round recorded since the last one, through the agent's own
// reader, outage exporter and OTLP/gRPC exporter to a sink on loopback:
// what every export interval costs the probe (docs/BENCHMARKS.md, "Probe
// footprint"). Compare runs with benchstat; -benchmem's B/op is the
// garbage each export leaves.
func BenchmarkExport1000(b *testing.B) {
	a, err := New(footprintConfig(b, startDiscardSink(b), 1000), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.shutdownProviders(context.Background()) })
	up := a.uplink[0]
	ctx := context.Background()
	record := func() {
		for i, j := range up.jobs {
			j.record(healthyRound(i))
		}
	}
	record()
	if err := up.provider.ForceFlush(ctx); err != nil { // the SDK's first-collection set-up
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		record()
		b.StartTimer()
		if err := up.provider.ForceFlush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := up.exporter.undelivered(); err != nil {
		b.Fatal(err)
	}
}
