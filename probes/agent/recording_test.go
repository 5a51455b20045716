package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
)

// runRecording runs the test config with recording set, until both uplinks
// sent three rounds of each target, and returns the last export per
// carrier, the agent's log and what its /metrics served then.
func runRecording(t *testing.T, rec config.Recording) (map[string]*metricspb.ResourceMetrics, *logRecorder, string) {
	t.Helper()
	collector := testenv.FreeAddr(t)
	recv := startReceiver(t, collector)
	cfg := testConfig(t, collector, startReflector(t), testenv.FreeAddr(t))
	cfg.Recording = rec
	cfg.Metrics.Listen = testenv.FreeAddr(t)
	logs := &logRecorder{}
	stop := runAgent(t, cfg, slog.New(logs))
	waitFor(t, "three runs of every target on both uplinks", 20*time.Second, func() bool {
		l := recv.latest()
		for _, carrier := range []string{"Globe", "PLDT"} {
			if l[carrier] == nil {
				return false
			}
			m := metricsByName(l[carrier])
			if sumFor(m[metricmodel.Attempts], "davao-reflector", "") < 3 || sumFor(m[metricmodel.Failures], "baguio-tcp", "refused") < 3 {
				return false
			}
		}
		return true
	})
	resp, err := http.Get("http://" + cfg.Metrics.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d, %v", resp.StatusCode, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return recv.latest(), logs, string(body)
}

func validTrace(id []byte) bool { return len(id) == 16 && !bytes.Equal(id, make([]byte, 16)) }

func TestRecordingBothHistogramsWithExemplars(t *testing.T) {
	latest, logs, scraped := runRecording(t, config.Recording{Histograms: config.HistogramsBoth})
	// The probe's own /metrics registry takes both forms side by side.
	for _, want := range []string{"network_latency_milliseconds_bucket{", "network_latency_native_milliseconds_count{"} {
		if !strings.Contains(scraped, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for carrier, rm := range latest {
		m := metricsByName(rm)
		classic, native := m[metricmodel.Latency], m[metricmodel.LatencyNative]
		if classic.GetHistogram() == nil || native.GetExponentialHistogram() == nil {
			t.Fatalf("%s: network.latency %v and network.latency.native %v: want a classic and an exponential histogram", carrier, classic, native)
		}
		if native.Unit != metricmodel.LatencyUnit || native.GetExponentialHistogram().AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("%s: native unit %q temporality %v", carrier, native.Unit, native.GetExponentialHistogram().AggregationTemporality)
		}
		cdp, ndp := classic.GetHistogram().DataPoints[0], native.GetExponentialHistogram().DataPoints[0]
		if !slices.Equal(cdp.ExplicitBounds, wantBuckets) {
			t.Errorf("%s: classic bounds %v", carrier, cdp.ExplicitBounds)
		}
		// One instrument, two views: the same measurements in both forms.
		if cdp.Count != ndp.Count || cdp.GetSum() != ndp.GetSum() {
			t.Errorf("%s: classic count %d sum %v, native count %d sum %v", carrier, cdp.Count, cdp.GetSum(), ndp.Count, ndp.GetSum())
		}
		if ndp.Scale > nativeMaxScale || ndp.Scale < 0 {
			t.Errorf("%s: native scale %d, want 0..%d (finest Prometheus stores)", carrier, ndp.Scale, nativeMaxScale)
		}
		// recording.slow 0: every round's slowest answer is marked.
		for name, exs := range map[string][]*metricspb.Exemplar{"classic": cdp.Exemplars, "native": ndp.Exemplars} {
			if len(exs) == 0 {
				t.Errorf("%s: no exemplar on the %s latency histogram", carrier, name)
			}
			for _, ex := range exs {
				if !validTrace(ex.TraceId) || len(ex.SpanId) != 8 || ex.GetAsDouble() <= 0 || ex.GetAsDouble() > cdp.GetMax() {
					t.Errorf("%s: %s exemplar %v", carrier, name, ex)
				}
			}
		}
		for _, dp := range m[metricmodel.Failures].GetSum().GetDataPoints() {
			a := attrs(dp.Attributes)
			switch {
			case a["target"] == "baguio-tcp" && a["reason"] == "refused":
				if len(dp.Exemplars) == 0 || !validTrace(dp.Exemplars[0].TraceId) {
					t.Errorf("%s: refused failures carry exemplars %v, want a trace id", carrier, dp.Exemplars)
				}
			case dp.GetAsInt() == 0 && len(dp.Exemplars) > 0:
				t.Errorf("%s: %v at 0 carries exemplars %v", carrier, a, dp.Exemplars)
			}
		}
		for _, dp := range m[metricmodel.Attempts].GetSum().GetDataPoints() {
			if len(dp.Exemplars) > 0 {
				t.Errorf("%s: attempts carry exemplars %v", carrier, dp.Exemplars)
			}
		}
	}
	var failing int
	for _, l := range logs.lines() {
		if l.msg == "probe failing" {
			failing++
			if id, _ := l.attrs["trace_id"].(string); len(id) != 32 || id == strings.Repeat("0", 32) {
				t.Errorf("probe failing logged trace_id %v, want the failure's trace id", l.attrs["trace_id"])
			}
		}
	}
	if failing == 0 {
		t.Error("no probe failing line for the closed port")
	}
}

func TestRecordingExponentialOnlyAndSlowThreshold(t *testing.T) {
	// No answer on loopback takes 50 s: only failures are marked.
	latest, _, _ := runRecording(t, config.Recording{Histograms: config.HistogramsExponential, Slow: 50 * time.Second})
	for carrier, rm := range latest {
		m := metricsByName(rm)
		if m[metricmodel.Latency] != nil {
			t.Errorf("%s: exponential only, but the classic histogram is sent", carrier)
		}
		native := m[metricmodel.LatencyNative].GetExponentialHistogram()
		if native == nil || native.DataPoints[0].Count == 0 {
			t.Fatalf("%s: network.latency.native %v", carrier, native)
		}
		if exs := native.DataPoints[0].Exemplars; len(exs) > 0 {
			t.Errorf("%s: no answer reached recording.slow, but exemplars %v", carrier, exs)
		}
		for _, dp := range m[metricmodel.Failures].GetSum().GetDataPoints() {
			if a := attrs(dp.Attributes); a["target"] == "baguio-tcp" && a["reason"] == "refused" && len(dp.Exemplars) == 0 {
				t.Errorf("%s: failures carry no exemplar", carrier)
			}
		}
	}
}

func TestRecordingClassicByDefault(t *testing.T) {
	latest, _, _ := runRecording(t, config.Recording{})
	for carrier, rm := range latest {
		m := metricsByName(rm)
		if m[metricmodel.LatencyNative] != nil || m[metricmodel.Latency].GetHistogram() == nil {
			t.Errorf("%s: default recording must send the classic histogram only: %v", carrier, m)
		}
	}
}

// TestExemplarSlicesHoldWhatTheyCarry: no point gets an exemplar slice
// longer than the exemplars it carries. An instrument never recorded with
// mark's context gets none at all, where the SDK's empty reservoir gave
// every point of a cumulative sum a 29-exemplar one at every collection
// (15 MB per export at 1,000 targets); the latency histograms and the
// failures counter keep their exemplars, in slices exactly as long, where
// the SDK gave every histogram point 29 slots, marked or not (3 MB per
// export). Each collection is into a fresh ResourceMetrics, as the
// PeriodicReader's is; every histogram form is covered.
func TestExemplarSlicesHoldWhatTheyCarry(t *testing.T) {
	for _, form := range []string{config.HistogramsClassic, config.HistogramsExponential, config.HistogramsBoth} {
		t.Run(form, func(t *testing.T) { testExemplarSlices(t, form) })
	}
}

func testExemplarSlices(t *testing.T, form string) {
	reader := sdkmetric.NewManualReader()
	opts := append(recordingOptions(config.Recording{Histograms: form}), sdkmetric.WithReader(reader))
	provider := sdkmetric.NewMeterProvider(opts...)
	defer provider.Shutdown(context.Background())
	inst, err := newInstruments(provider.Meter(metricmodel.ScopeName), "Manila")
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	davao := metric.WithAttributes(attribute.String(metricmodel.AttrTarget, "davao"))
	// A healthy target: its latency and failures are never marked.
	baguio := metric.WithAttributes(attribute.String(metricmodel.AttrTarget, "baguio"))
	for range 2 {
		slow, _ := mark("slow probe")
		inst.latency.Record(slow, 250, davao)
		failed, _ := mark("probe failure")
		inst.failures.Add(failed, 1, davao)
		inst.latency.Record(bg, 0.2, baguio)
		inst.failures.Add(bg, 0, baguio)
		inst.attempts.Add(bg, 5, davao)
		inst.jitter.Add(bg, 0.5, davao)
		inst.lateness.Record(bg, 0.001, inst.here)

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(bg, &rm); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, m := range rm.ScopeMetrics[0].Metrics {
			type slice struct {
				target    string
				len, cap_ int
			}
			var got []slice
			target := func(s attribute.Set) string { v, _ := s.Value(metricmodel.AttrTarget); return v.AsString() }
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got = append(got, slice{target(p.Attributes), len(p.Exemplars), cap(p.Exemplars)})
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					got = append(got, slice{target(p.Attributes), len(p.Exemplars), cap(p.Exemplars)})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got = append(got, slice{target(p.Attributes), len(p.Exemplars), cap(p.Exemplars)})
				}
			case metricdata.ExponentialHistogram[float64]:
				for _, p := range d.DataPoints {
					got = append(got, slice{target(p.Attributes), len(p.Exemplars), cap(p.Exemplars)})
				}
			}
			for _, g := range got {
				seen[m.Name]++
				marked := (m.Name == metricmodel.Latency || m.Name == metricmodel.LatencyNative || m.Name == metricmodel.Failures) && g.target == "davao"
				if marked && g.len == 0 {
					t.Errorf("%s{%s}: a marked measurement lost its exemplar", m.Name, g.target)
				}
				if g.cap_ != g.len {
					t.Errorf("%s{%s}: an exemplar slice of capacity %d for %d exemplars", m.Name, g.target, g.cap_, g.len)
				}
			}
		}
		want := []string{metricmodel.Failures, metricmodel.Attempts, metricmodel.Jitter, metricmodel.Lateness}
		if form != config.HistogramsExponential {
			want = append(want, metricmodel.Latency)
		}
		if form != config.HistogramsClassic {
			want = append(want, metricmodel.LatencyNative)
		}
		for _, name := range want {
			if seen[name] == 0 {
				t.Errorf("%s: no point collected", name)
			}
		}
	}
}

// TestReservoirsChangeNothingExported: the agent's reservoirs
// (noExemplars, exactExemplars) change what a point's slices cost, not what
// is exported. The same measurements — marked and unmarked, on every
// instrument, over two collections — recorded through the agent's
// recording options and through the SDK's own reservoirs collect to the
// same points, exemplars included.
func TestReservoirsChangeNothingExported(t *testing.T) {
	sdkDefaults := map[string][]sdkmetric.Option{
		config.HistogramsClassic: {sdkmetric.WithExemplarFilter(exemplar.TraceBasedFilter)},
		config.HistogramsBoth: {
			sdkmetric.WithExemplarFilter(exemplar.TraceBasedFilter),
			sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: metricmodel.Latency}, sdkmetric.Stream{
				Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: metricmodel.LatencyBounds},
			})),
			sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: metricmodel.Latency}, sdkmetric.Stream{
				Name: metricmodel.LatencyNative,
				Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{
					MaxSize: metricmodel.LatencyNativeMaxBuckets, MaxScale: nativeMaxScale,
				},
			})),
		},
	}
	for form, sdkOpts := range sdkDefaults {
		t.Run(form, func(t *testing.T) {
			type side struct {
				reader *sdkmetric.ManualReader
				inst   *instruments
			}
			open := func(opts []sdkmetric.Option) side {
				reader := sdkmetric.NewManualReader()
				provider := sdkmetric.NewMeterProvider(append(opts, sdkmetric.WithReader(reader))...)
				t.Cleanup(func() { provider.Shutdown(context.Background()) })
				inst, err := newInstruments(provider.Meter(metricmodel.ScopeName), "Manila")
				if err != nil {
					t.Fatal(err)
				}
				return side{reader, inst}
			}
			agent, sdk := open(recordingOptions(config.Recording{Histograms: form})), open(sdkOpts)
			bg := context.Background()
			for round := range 2 {
				slow, _ := mark("slow probe")
				failed, _ := mark("probe failure")
				for _, s := range []side{agent, sdk} {
					for i, target := range []string{"davao", "baguio", "cebu"} {
						at := metric.WithAttributes(attribute.String(metricmodel.AttrTarget, target))
						for k := range 5 {
							ctx := bg
							if i == 0 && k == 4 {
								ctx = slow // one marked answer a round, as mark's slowest
							}
							s.inst.latency.Record(ctx, float64(1+i+k*round), at)
						}
						if i == 1 {
							s.inst.failures.Add(failed, 2, at)
						}
						s.inst.attempts.Add(bg, 5, at)
						s.inst.duplicates.Add(bg, int64(round), at)
						s.inst.jitter.Add(bg, 0.25*float64(i), at)
						s.inst.jitterPairs.Add(bg, 4, at)
						s.inst.statusCode.Record(bg, 200, at)
						s.inst.lateness.Record(bg, 0.001*float64(i), s.inst.here)
					}
				}
				var got, want metricdata.ResourceMetrics
				if err := agent.reader.Collect(bg, &got); err != nil {
					t.Fatal(err)
				}
				if err := sdk.reader.Collect(bg, &want); err != nil {
					t.Fatal(err)
				}
				if len(got.ScopeMetrics) != 1 || len(want.ScopeMetrics) != 1 {
					t.Fatalf("scopes: agent %d, SDK %d", len(got.ScopeMetrics), len(want.ScopeMetrics))
				}
				exemplars := 0
				for _, m := range got.ScopeMetrics[0].Metrics {
					switch d := m.Data.(type) {
					case metricdata.Histogram[float64]:
						for _, p := range d.DataPoints {
							exemplars += len(p.Exemplars)
						}
					case metricdata.Sum[int64]:
						for _, p := range d.DataPoints {
							exemplars += len(p.Exemplars)
						}
					}
				}
				if exemplars == 0 {
					t.Fatal("no exemplar collected: the comparison would not cover them")
				}
				metricdatatest.AssertEqual(t, want.ScopeMetrics[0], got.ScopeMetrics[0], metricdatatest.IgnoreTimestamp())
			}
		})
	}
}
