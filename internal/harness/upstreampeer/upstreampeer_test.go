package upstreampeer_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/upstreampeer"
)

// TestPeerStoresAProbeExport builds (or reuses) the peer, sends it one
// probe-shaped export and waits (bounded) until Prometheus holds it with
// the uplink's carrier as a label: what the load tool's freshness query
// on the peer relies on.
func TestPeerStoresAProbeExport(t *testing.T) {
	testenv.LongTest(t, "builds the upstream collector with OCB and runs it with Prometheus")
	prom := testenv.Binary(t, "prometheus", "PROMETHEUS_BINARY")
	ctx := context.Background()
	bin, err := upstreampeer.Build(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	tel, err := strconv.Atoi(port(t, testenv.FreeAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := upstreampeer.Start(ctx, upstreampeer.Options{CollectorBinary: bin, PrometheusBinary: prom, Dir: t.TempDir(),
		OTLPGRPC: testenv.FreeAddr(t), OTLPHTTP: testenv.FreeAddr(t), PrometheusAddr: testenv.FreeAddr(t), TelemetryPort: tel})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	fleet, err := otlpload.NewFleet(1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := otlpload.Streams(fleet, time.Now().Add(-time.Minute))[0]
	sender, err := otlpload.NewSender(otlpload.GRPC, p.OTLPGRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	md, sample := s.Export(time.Now())
	if out := sender.Send(ctx, md, ""); !out.Acked {
		t.Fatalf("peer refused the export: %+v", out)
	}
	api, err := otlpload.NewAPI(p.PrometheusURL, "")
	if err != nil {
		t.Fatal(err)
	}
	query := `network_latency_milliseconds_count{instance="` + s.Probe.ID + `",bantay_uplink_carrier="` + s.Uplink.Carrier + `"}`
	for deadline := time.Now().Add(time.Minute); ; {
		v, _, _, err := api.Query(ctx, "timestamp("+query+")", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if vec := v.(model.Vector); len(vec) == 1 {
			if got := time.UnixMilli(int64(float64(vec[0].Value)*1000 + 0.5)); !got.Equal(sample) {
				t.Fatalf("sample at %v, want %v", got, sample)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not in the peer's Prometheus after a minute", query)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
