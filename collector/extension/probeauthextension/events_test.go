package probeauthextension

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/collector/sharedstate"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// secret is a token no probe has; it must never appear in an event or a log line.
const secret = "s3cret-token-never-logged"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type fixture struct {
	auth *authenticator
	tel  *componenttest.Telemetry
	logs *observer.ObservedLogs
	clk  *clock
	sub  <-chan events.Event
}

// newFixture starts the extension with a bus owner (a stand-in for the
// bantay extension, whose bus holds capacity events) and a fake clock.
func newFixture(t *testing.T, capacity int) *fixture {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := extensiontest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	core, logs := observer.New(zap.InfoLevel)
	set.Logger = zap.New(core)
	ext, err := NewFactory().Create(context.Background(), set, &Config{Extension: sharedstate.DefaultID, Tokens: map[string]string{"mnl-01": testHash}})
	require.NoError(t, err)
	bus, err := events.NewBus(capacity, nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	sub, cancel := bus.Subscribe()
	t.Cleanup(cancel)
	f := &fixture{auth: ext.(*authenticator), tel: tel, logs: logs, clk: &clock{t: time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)}, sub: sub}
	f.auth.reporter.now = f.clk.now
	require.NoError(t, ext.Start(context.Background(), hosttest.WithBus(bus)))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	return f
}

// refuse sends one request that must be refused, from peer.
func (f *fixture) refuse(t *testing.T, peer string, headers map[string][]string) {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", peer)
	require.NoError(t, err)
	ctx := client.NewContext(context.Background(), client.Info{Addr: addr})
	_, err = f.auth.Authenticate(ctx, headers)
	require.Error(t, err)
}

// drain returns the events published so far.
func (f *fixture) drain() []events.Event {
	var out []events.Event
	for {
		select {
		case e := <-f.sub:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) counter(t *testing.T, name, attr string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, err := f.tel.GetMetric(name)
	if err != nil {
		return out
	}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		v, _ := dp.Attributes.Value(attribute.Key(attr))
		out[v.AsString()] = dp.Value
	}
	return out
}

func requests(evs []events.Event) int {
	n := 0
	for _, e := range evs {
		n += e.Attrs[events.AttrRequests].(int)
	}
	return n
}

// TestRefusalsArePublished: each kind of bad credential becomes a
// probe_rejected event naming the reason, the peer and the probe the
// request claims (in claimed_probe: it is not authenticated), and neither
// the event nor the log line contains the token.
func TestRefusalsArePublished(t *testing.T) {
	f := newFixture(t, 16)
	bearer := []string{"Bearer " + secret}
	for _, tc := range []struct {
		name, peer string
		headers    map[string][]string
		reason     string
		claimed    string
		detail     string
	}{
		{"missing", "198.51.100.7:40001", map[string][]string{}, reasonMissing, "", "no bearer token"},
		{"malformed", "198.51.100.7:40002", map[string][]string{"authorization": {"Basic " + secret}}, reasonMalformed, "", "is not \"Bearer <token>\""},
		{"unknown", "198.51.100.7:40003", map[string][]string{"authorization": bearer}, reasonUnknown, "", "no registered probe"},
		// HTTP canonicalises header names; gRPC lower-cases them.
		{"wrong", "[2001:db8::5]:40004", map[string][]string{"Authorization": bearer, "Bantay-Probe-Id": {"mnl-01"}}, reasonWrong, "mnl-01", "not the one registered for probe mnl-01"},
		{"unknown claim", "198.51.100.8:40005", map[string][]string{"authorization": bearer, ProbeIDHeader: {"zzz-99"}}, reasonUnknown, "zzz-99", "no registered probe"},
		{"garbage claim", "198.51.100.9:40006", map[string][]string{"authorization": bearer, ProbeIDHeader: {"a b\n<script>"}}, reasonUnknown, "", "no registered probe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.refuse(t, tc.peer, tc.headers)
			evs := f.drain()
			require.Len(t, evs, 1)
			e := evs[0]
			host, _, _ := net.SplitHostPort(tc.peer)
			assert.Equal(t, events.KindProbeRejected, e.Kind)
			assert.Equal(t, events.SeverityWarn, e.Severity)
			assert.Equal(t, tc.reason, e.Reason)
			assert.Contains(t, e.Error, tc.detail)
			assert.Equal(t, host, e.Attrs[events.AttrPeer])
			assert.Equal(t, 1, e.Attrs[events.AttrRequests])
			assert.Empty(t, e.Probe, "an unauthenticated claim must not use a probe's rate-limit key")
			if tc.claimed != "" {
				assert.Equal(t, tc.claimed, e.Attrs[events.AttrClaimedProbe])
				assert.Contains(t, e.Body, "claiming to be "+tc.claimed)
			} else {
				assert.NotContains(t, e.Attrs, events.AttrClaimedProbe)
			}
			assert.Contains(t, e.Body, host)
			assert.Equal(t, f.clk.now(), e.Time)
			assert.NotContains(t, fmt.Sprintf("%+v", e), secret)
		})
	}
	assert.Equal(t, map[string]int64{reasonMissing: 1, reasonMalformed: 1, reasonUnknown: 3, reasonWrong: 1},
		f.counter(t, "bantay_probeauth_failures", "reason"))
	require.Equal(t, 6, f.logs.Len())
	for _, l := range f.logs.All() {
		assert.NotContains(t, fmt.Sprintf("%s %v", l.Message, l.ContextMap()), secret)
	}

	// The client is not told whether the probe it claims is registered.
	_, errWrong := f.auth.Authenticate(context.Background(), map[string][]string{"authorization": bearer, ProbeIDHeader: {"mnl-01"}})
	_, errUnk := f.auth.Authenticate(context.Background(), map[string][]string{"authorization": bearer, ProbeIDHeader: {"zzz-99"}})
	assert.Equal(t, errUnk, errWrong)
}

// TestRefusalsAreRateLimitedPerSource: a probe retrying with a bad token
// gives one event at once, then one per interval counting the requests
// refused since; a source that stops gets its held refusals reported
// after the interval. Every refusal is in exactly one event.
func TestRefusalsAreRateLimitedPerSource(t *testing.T) {
	f := newFixture(t, 64)
	wrong := map[string][]string{"authorization": {"Bearer " + secret}, ProbeIDHeader: {"mnl-01"}}
	start := f.clk.now()
	for range 100 {
		f.refuse(t, "192.0.2.10:50000", wrong)
		f.clk.add(100 * time.Millisecond)
	}
	evs := f.drain()
	require.Len(t, evs, 1)
	assert.Equal(t, 1, evs[0].Attrs[events.AttrRequests])

	f.auth.reporter.flush(context.Background(), f.clk.now()) // 10 s in: still within the interval
	assert.Empty(t, f.drain())

	f.clk.add(reportInterval)
	f.auth.reporter.flush(context.Background(), f.clk.now())
	evs = f.drain()
	require.Len(t, evs, 1)
	assert.Equal(t, 99, evs[0].Attrs[events.AttrRequests])
	assert.Equal(t, start.Add(100*time.Millisecond), evs[0].Time, "the time of the first refusal it counts")
	assert.Contains(t, evs[0].Body, "99 requests from 192.0.2.10 claiming to be mnl-01 rejected (wrong_token)")

	// Nothing held any more: the source is forgotten after its interval.
	f.clk.add(reportInterval)
	f.auth.reporter.flush(context.Background(), f.clk.now())
	assert.Empty(t, f.drain())
	assert.Empty(t, f.auth.reporter.sources)
	assert.Equal(t, 2, f.logs.Len(), "logged as often as published")

	// Another peer, or another reason, is another source.
	f.refuse(t, "192.0.2.11:50000", wrong)
	f.refuse(t, "192.0.2.10:50001", map[string][]string{})
	assert.Len(t, f.drain(), 2)
}

// TestHeldRefusalsAreCountedAtShutdown: refusals held for a later report
// when the extension shuts down are counted as unreported, not lost.
func TestHeldRefusalsAreCountedAtShutdown(t *testing.T) {
	f := newFixture(t, 16)
	wrong := map[string][]string{"authorization": {"Bearer " + secret}, ProbeIDHeader: {"mnl-01"}}
	for range 3 {
		f.refuse(t, "192.0.2.10:50000", wrong)
	}
	evs := f.drain()
	require.Len(t, evs, 1)
	require.NoError(t, f.auth.Shutdown(context.Background()))
	assert.Equal(t, map[string]int64{causeShutdown: 2}, f.counter(t, "bantay_probeauth_unreported_failures", "cause"))
	assert.Empty(t, f.auth.reporter.sources)
}

// TestRefusalFloodIsBounded: a flood of bad requests from thousands of
// addresses puts at most the global budget of events on the bus, keeps a
// bounded table, and counts what it does not report.
func TestRefusalFloodIsBounded(t *testing.T) {
	const n = 5000
	f := newFixture(t, n)
	begin := time.Now()
	for i := range n {
		f.refuse(t, fmt.Sprintf("10.%d.%d.%d:443", i>>16&255, i>>8&255, i&255), map[string][]string{"authorization": {"Bearer " + secret}})
	}
	t.Logf("%d refusals in %v", n, time.Since(begin))
	evs := f.drain()
	assert.Len(t, evs, reportBurst, "the burst, not one event per request")
	assert.LessOrEqual(t, len(f.auth.reporter.sources), maxSources)
	assert.Equal(t, map[string]int64{causeSourcesFull: n - maxSources}, f.counter(t, "bantay_probeauth_unreported_failures", "cause"))

	// The held refusals come out at the budget's rate; those held too long
	// are given up and counted.
	published := evs
	for elapsed := time.Duration(0); elapsed < maxHold+2*reportInterval; elapsed += flushEvery {
		f.auth.reporter.flush(context.Background(), f.clk.add(flushEvery))
		got := f.drain()
		assert.LessOrEqual(t, len(got), int(flushEvery/reportRate)+1, "events per flush")
		published = append(published, got...)
	}
	unreported := f.counter(t, "bantay_probeauth_unreported_failures", "cause")
	assert.Positive(t, unreported[causeRateLimit])
	assert.Equal(t, int64(n), int64(requests(published))+unreported[causeRateLimit]+unreported[causeSourcesFull],
		"every refusal is in an event or counted as unreported")
	assert.Empty(t, f.auth.reporter.sources, "the table empties once the flood is over")
}

// TestReceiverRefusalReachesTheBus wires the extension to a real OTLP/HTTP
// receiver, as collector/config/bantay.yaml does: a request with another
// probe's token is refused with 401 and reported with the peer address the
// receiver saw.
func TestReceiverRefusalReachesTheBus(t *testing.T) {
	f := newFixture(t, 16)
	addr := testenv.FreeAddr(t)
	rf := otlpreceiver.NewFactory()
	cfg := rf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"protocols": map[string]any{"http": map[string]any{
			"endpoint": addr,
			"auth":     map[string]any{"authenticator": metadata.Type.String()},
		}},
	}).Unmarshal(cfg))
	sink := new(consumertest.MetricsSink)
	rcv, err := rf.CreateMetrics(context.Background(), receivertest.NewNopSettings(rf.Type()), cfg, sink)
	require.NoError(t, err)
	host := hosttest.Host{component.NewID(metadata.Type): f.auth}
	require.NoError(t, rcv.Start(context.Background(), host))
	defer func() { require.NoError(t, rcv.Shutdown(context.Background())) }()

	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/metrics", bytes.NewReader(nil))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Bantay-Probe-Id", "mnl-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	var e events.Event
	select {
	case e = <-f.sub:
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the refused request")
	}
	assert.Equal(t, reasonWrong, e.Reason)
	assert.Equal(t, "mnl-01", e.Attrs[events.AttrClaimedProbe])
	assert.Equal(t, "127.0.0.1", e.Attrs[events.AttrPeer])
	assert.False(t, strings.Contains(e.Body+e.Error, secret))
	assert.Zero(t, sink.DataPointCount())
}
