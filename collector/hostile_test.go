package collector_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// hostileProbe is load-01's uplink, the one registered probe; a hostile
// request claims to be it, so that citytag judges every point.
var hostileProbe = otlpload.Options{Probe: "load-01", City: "Manila", Carrier: "Globe", NetworkType: "5g", DstCity: "Davao"}

// latency is a request of n well-formed latency points of load-01, each
// then changed by mutate (nil: none).
func latency(n int, mutate func(i int, dp pmetric.HistogramDataPoint)) pmetric.Metrics {
	targets := make([]string, n)
	for i := range targets {
		targets[i] = "hostile-" + strconv.Itoa(i)
	}
	md := hostileProbe.Batch(targets, time.Now())
	dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Histogram().DataPoints()
	for i := range dps.Len() {
		if mutate != nil {
			mutate(i, dps.At(i))
		}
	}
	return md
}

func protobuf(md pmetric.Metrics) []byte {
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		panic(err)
	}
	return b
}

// zeros reads n zero bytes without holding them.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := int64(len(p))
	if k > z.n {
		k = z.n
	}
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// gzipBomb is gzip of n zero bytes (about n/1000 compressed): one member of
// 1 MiB of zeros, repeated, which a gzip reader reads as one stream
// (RFC 1952, 2.2). Compressing the whole n once took minutes under the race
// detector on a loaded CI machine, and ate the test's deadline.
func gzipBomb(n int64) []byte {
	const chunk = 1 << 20
	var member bytes.Buffer
	w, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if _, err := io.Copy(w, &zeros{chunk}); err != nil {
		panic(err)
	}
	_ = w.Close()
	return bytes.Repeat(member.Bytes(), int(n/chunk))
}

// hostileCase is one input of the replayed corpus and the answer it must get.
type hostileCase struct {
	name string
	// body and contentType, encoding are posted over OTLP/HTTP as they are;
	// md, when set, is sent over both OTLP/gRPC and OTLP/HTTP (protobuf).
	body        func() io.Reader
	contentType string
	encoding    string
	md          func() pmetric.Metrics
	// want is the HTTP status; reason, when set, the citytag reason the
	// refusal names (its first) and counts; refused, when set, the reason
	// bantay_otlp_refused_requests{transport="http"} counts a request the
	// receiver refused itself under.
	want    int
	reason  string
	refused string
}

func hostileCorpus() []hostileCase {
	const pb, js = "application/x-protobuf", "application/json"
	good := protobuf(latency(3, nil))
	bomb := gzipBomb(1 << 30)
	bigName := strings.Repeat("m", 1<<20)
	return []hostileCase{
		{name: "malformed protobuf", body: func() io.Reader { return strings.NewReader("\x0a\xff\xff\xff\xff\x0fnot a protobuf") }, contentType: pb, want: 400, refused: "malformed_protobuf"},
		{name: "truncated protobuf", body: func() io.Reader { return bytes.NewReader(good[:len(good)/2]) }, contentType: pb, want: 400, refused: "malformed_protobuf"},
		{name: "bad JSON", body: func() io.Reader { return strings.NewReader(`{"resourceMetrics": [{"resource": `) }, contentType: js, want: 400, refused: "malformed_json"},
		{name: "JSON of the wrong shape", body: func() io.Reader { return strings.NewReader(`{"resourceMetrics": "yes"}`) }, contentType: js, want: 400, refused: "malformed_json"},
		{name: "wrong content type", body: func() io.Reader { return bytes.NewReader(good) }, contentType: "text/plain", want: 415, refused: "content_type"},
		// Refused by confighttp's decompressor, which runs before any
		// middleware: counted only in otelhttp's http_server_request_duration
		// {http_response_status_code="400"} (docs/RELIABILITY.md).
		{name: "unknown content encoding", body: func() io.Reader { return bytes.NewReader(good) }, contentType: pb, encoding: "br2", want: 400},
		{name: "100 MB body", body: func() io.Reader { return &zeros{100 << 20} }, contentType: pb, want: 400, refused: "too_large"},
		{name: "gzip bomb (1 GiB of zeros)", body: func() io.Reader { return bytes.NewReader(bomb) }, contentType: pb, encoding: "gzip", want: 400, refused: "too_large"},
		{name: "bucket counts not matching bounds", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.BucketCounts().FromRaw([]uint64{4}) })
		}, want: 400, reason: "invalid_value"},
		{name: "non-increasing bounds", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.ExplicitBounds().FromRaw([]float64{10, 50, 20, 100}) })
		}, want: 400, reason: "invalid_value"},
		{name: "count below its buckets' total", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.SetCount(2) })
		}, want: 400, reason: "invalid_value"},
		{name: "NaN sum", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.SetSum(math.NaN()) })
		}, want: 400, reason: "invalid_value"},
		{name: "+Inf max", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.SetMax(math.Inf(1)) })
		}, want: 400, reason: "invalid_value"},
		{name: "negative latency", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.SetSum(-60) })
		}, want: 400, reason: "invalid_value"},
		{name: "timestamp 2 h in the future", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) {
				dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now().Add(2 * time.Hour)))
			})
		}, want: 400, reason: "timestamp_in_future"},
		{name: "timestamp in the year 2200", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) {
				dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)))
			})
		}, want: 400, reason: "timestamp_in_future"},
		{name: "timestamp 0 (1970)", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.SetTimestamp(0) })
		}, want: 400, reason: "timestamp_too_old"},
		{name: "5000 distinct unknown dst_city", md: func() pmetric.Metrics {
			return latency(5000, func(i int, dp pmetric.HistogramDataPoint) {
				dp.Attributes().PutStr("dst_city", "Nowhere-"+strconv.Itoa(i))
			})
		}, want: 400, reason: "unknown_dst_city"},
		{name: "label value with newline and quotes", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.Attributes().PutStr("dst_city", "Davao\"\n} evil=\"1") })
		}, want: 400, reason: "unknown_dst_city"},
		{name: "label value with control characters", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.Attributes().PutStr("target", "t\x00\x1b[2J\x7f") })
		}, want: 200}, // stored: a valid UTF-8 label value; the API escapes it
		{name: "label value of invalid UTF-8", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.Attributes().PutStr("target", "t\xff\xfe") })
		}, want: 400, reason: "invalid_utf8"},
		{name: "dst_city of invalid UTF-8", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.Attributes().PutStr("dst_city", "Gotham\xff") })
		}, want: 400, reason: "invalid_utf8"},
		{name: "emoji label value", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) { dp.Attributes().PutStr("target", "reflector 🌴") })
		}, want: 200},
		{name: "1 MB metric name", md: func() pmetric.Metrics {
			md := latency(1, nil)
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).SetName(bigName)
			return md
		}, want: 400, reason: "attribute_value_too_long"},
		{name: "5000 attributes on a point", md: func() pmetric.Metrics {
			return latency(1, func(_ int, dp pmetric.HistogramDataPoint) {
				for i := range 5000 {
					dp.Attributes().PutStr("a"+strconv.Itoa(i), "v")
				}
			})
		}, want: 400, reason: "attribute_limit"},
	}
}

// grpcToHTTP is the HTTP status the OTLP receiver gives a gRPC code.
func grpcToHTTP(c codes.Code) int {
	switch c {
	case codes.OK:
		return 200
	case codes.InvalidArgument:
		return 400
	case codes.ResourceExhausted:
		return 429
	case codes.Unavailable:
		return 503
	}
	return 500
}

// TestHostileInputIsRefusedAndAWellBehavedProbeLosesNothing replays the
// hostile corpus against the real collector binary over OTLP/HTTP and
// OTLP/gRPC while a well-behaved probe sends: every hostile input gets a
// 4xx / INVALID_ARGUMENT naming its reason (never a 5xx), is counted by
// reason, the collector's memory stays bounded, and every point the
// well-behaved probe had acknowledged is stored. The table of answers is
// docs/RELIABILITY.md, "Hostile input".
func TestHostileInputIsRefusedAndAWellBehavedProbeLosesNothing(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	in := newInstance(t, "")
	cmd := in.start()
	corpus := hostileCorpus()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A well-behaved probe sends throughout; its load is small, since its
	// head series would otherwise hide what the hostile inputs cost in the
	// collector's memory.
	stopLoad := background(t, in, 0)

	conn, err := grpc.NewClient(in.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)
	base := "http://" + in.otlpHTTP
	wantCounted, wantRefused := map[string]int{}, map[string]float64{}
	for _, tc := range corpus {
		answer := func(transport string, status int, msg string) {
			t.Logf("%-40s %-5s %d %.160q (peak RSS %d MiB)", tc.name, transport, status, msg, peakRSS(t, cmd.Process.Pid)>>20)
			if status != tc.want {
				t.Errorf("%s over %s: answered %d %q, want %d", tc.name, transport, status, msg, tc.want)
			}
			if tc.reason != "" && !strings.Contains(msg, "first: "+tc.reason+" ") {
				t.Errorf("%s over %s: answer %.300q does not name %s", tc.name, transport, msg, tc.reason)
			}
		}
		if tc.md != nil {
			md := tc.md()
			n := md.DataPointCount()
			_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.WaitForReady(true), grpc.MaxCallSendMsgSize(64<<20))
			st := status.Convert(err)
			answer("gRPC", grpcToHTTP(st.Code()), st.Message())
			a, err := otlpload.PostHTTP(ctx, http.DefaultClient, base, tc.md())
			if err != nil {
				t.Fatalf("%s over HTTP: %v", tc.name, err)
			}
			answer("HTTP", a.Status, a.Message)
			if tc.reason != "" {
				wantCounted[tc.reason] += 2 * n
			}
			continue
		}
		a, err := otlpload.PostBody(ctx, http.DefaultClient, base, tc.contentType, tc.encoding, tc.body())
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.name, err)
		}
		answer("HTTP", a.Status, a.Message)
		if tc.refused != "" {
			wantRefused["http/"+tc.refused]++
		}
	}
	for _, tc := range hostileGRPCCorpus() {
		opts := []grpc.CallOption{grpc.MaxCallSendMsgSize(128 << 20)}
		if tc.gzip {
			opts = append(opts, grpc.UseCompressor(grpcgzip.Name))
		}
		err := otlpload.ExportRaw(ctx, conn, tc.body, opts...)
		st := status.Convert(err)
		t.Logf("%-40s gRPC  %v %.160q (peak RSS %d MiB)", tc.name, st.Code(), st.Message(), peakRSS(t, cmd.Process.Pid)>>20)
		if st.Code() != tc.want || !strings.Contains(st.Message(), tc.message) {
			t.Errorf("%s over gRPC: answered %v %q, want %v %q", tc.name, st.Code(), st.Message(), tc.want, tc.message)
		}
		wantRefused["grpc/"+tc.refused]++
	}
	stopLoad()

	counted := scrapeCounter(t, in.selfAddr, "bantay_citytag_rejected_points", "reason")
	for reason, n := range wantCounted {
		if counted[reason] != float64(n) {
			t.Errorf("bantay_citytag_rejected_points{reason=%q} = %v, want %d", reason, counted[reason], n)
		}
	}
	// Exactly these: what citytag refused must not be counted again as the
	// receiver's, and the well-behaved probe's requests not at all.
	if refused := scrapeCounter(t, in.selfAddr, "bantay_otlp_refused_requests", "transport", "reason"); !maps.Equal(refused, wantRefused) {
		t.Errorf("bantay_otlp_refused_requests = %v, want %v", refused, wantRefused)
	}
	if hwm := peakRSS(t, cmd.Process.Pid); hwm > 400<<20 {
		t.Errorf("collector peak RSS %d MiB: memory not bounded", hwm>>20)
	} else {
		t.Logf("collector peak RSS %d MiB", hwm>>20)
	}
}

// scrapeCounter reads a counter or gauge from the collector's telemetry
// (or the bantay extension's /metrics, by addr), summed by the values of
// labels (joined with "/").
func scrapeCounter(t *testing.T, addr, name string, labels ...string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range scrapeFamily(t, addr, name).GetMetric() {
		var key []string
		for _, l := range labels {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == l {
					key = append(key, lp.GetValue())
				}
			}
		}
		out[strings.Join(key, "/")] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

// scrapeFamily reads one metric family from the collector's telemetry (or
// the bantay extension's /metrics, by addr); nil when it is not there.
func scrapeFamily(t *testing.T, addr, name string) *dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The collector's own telemetry names a counter's family without
	// _total, client_golang (the bantay extension's /metrics) with it.
	fam, ok := families[name]
	if !ok {
		fam = families[name+"_total"]
	}
	return fam
}

// hostileGRPCCase is a raw OTLP/gRPC message (not a valid request, so it
// is sent with otlpload.ExportRaw) and the code and refusal reason it must get.
type hostileGRPCCase struct {
	name    string
	body    []byte
	gzip    bool
	want    codes.Code
	message string // what the status message must contain
	refused string
}

// hostileGRPCCorpus is what is refused before the receiver sees a request:
// INVALID_ARGUMENT naming the decoding error for an undecodable message
// (the refusals extension's codec and interceptor; grpc-go alone answers
// INTERNAL); RESOURCE_EXHAUSTED without RetryInfo for one over the
// receiver's 4 MiB max_recv_msg_size_mib, which no OTLP exporter retries.
func hostileGRPCCorpus() []hostileGRPCCase {
	good := protobuf(latency(3, nil))
	return []hostileGRPCCase{
		{name: "malformed protobuf", body: []byte("\x0a\xff\xff\xff\xff\x0fnot a protobuf"), want: codes.InvalidArgument, message: "malformed OTLP protobuf: ", refused: "malformed_protobuf"},
		{name: "truncated protobuf", body: good[:len(good)/2], want: codes.InvalidArgument, message: "malformed OTLP protobuf: ", refused: "malformed_protobuf"},
		{name: "16 MiB message", body: make([]byte, 16<<20), want: codes.ResourceExhausted, refused: "too_large"},
		{name: "gzip of 64 MiB of zeros", body: make([]byte, 64<<20), gzip: true, want: codes.ResourceExhausted, refused: "too_large"},
	}
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
