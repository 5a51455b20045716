package agent

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/meshreg"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
)

// registry serves a mesh registry answer the test changes, or a status.
type registry struct {
	mu     sync.Mutex
	sites  []meshreg.Site
	status int
	auth   []string
	asked  int
}

func (r *registry) set(status int, sites ...meshreg.Site) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.sites = status, sites
}

func (r *registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	if req.URL.Path != meshreg.Path {
		http.NotFound(w, req)
		return
	}
	if r.status != http.StatusOK {
		http.Error(w, "registry says no", r.status)
		return
	}
	_ = json.NewEncoder(w).Encode(meshreg.Answer{Probe: "mnl-01", Sites: r.sites})
}

func (r *registry) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked
}

// exportedTargets are the targets with attempts in every uplink's newest export.
func exportedTargets(recv *receiver) []string {
	var out []string
	for carrier, rm := range recv.latest() {
		for _, dp := range metricsByName(rm)["bantay.probe.attempts"].GetSum().GetDataPoints() {
			out = append(out, carrier+"/"+attrs(dp.Attributes)["target"])
		}
	}
	slices.Sort(out)
	return out
}

func meshConfig(t *testing.T, collector, registryURL, reflectorListen string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("mesh-test.yaml", fmt.Appendf(nil, `
probe: {id: mnl-01, city: Manila}
collector: {endpoint: %s, tls: {insecure: true}, token: s3cret, export_interval: 100ms, timeout: 1s}
uplinks:
  - {name: globe-5g, carrier: Globe, network_type: 5g, bind_address: 127.0.1.1}
  - {name: pldt-fiber, carrier: PLDT, network_type: fiber, bind_address: 127.0.1.2}
defaults: {interval: 100ms, timeout: 50ms}
mesh: {collector: %q, refresh: 1s, methods: [udp]}
reflector: {listen: %q}
`, collector, registryURL, reflectorListen))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// site is a registry entry with one site-wide udp reflector.
func site(id, city, addr string) meshreg.Site {
	return meshreg.Site{Probe: id, City: city, Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{{Address: addr}}}
}

// meshSetup starts an OTLP receiver and a registry listing dvo-01 with its
// reflector at own, the address cfg's probe runs its own reflector on.
func meshSetup(t *testing.T) (recv *receiver, reg *registry, cfg *config.Config, own string) {
	t.Helper()
	collector := testenv.FreeAddr(t)
	recv = startReceiver(t, collector)
	reg = &registry{}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	own = freeUDPAddr(t)
	reg.set(http.StatusOK, site("dvo-01", "Davao", own))
	return recv, reg, meshConfig(t, collector, srv.URL, own), own
}

// TestMeshTargetsFollowTheRegistry: a mesh probe measures the sites the
// registry lists on every uplink (here its own reflector, registered as a
// site), picks up a new one and drops a removed one within a refresh — a
// removed target's series stop being exported, no ghost — and keeps the
// last good set, counted and logged once, while the registry fails.
func TestMeshTargetsFollowTheRegistry(t *testing.T) {
	recv, reg, cfg, own := meshSetup(t)
	logs := &logRecorder{}
	stop := runAgent(t, cfg, slog.New(logs))

	answered := func(target string) func() bool {
		return func() bool {
			for _, rm := range recv.latest() {
				if !hasLatency(metricsByName(rm)[metricmodel.Latency], target) {
					return false
				}
			}
			return len(recv.latest()) == 2
		}
	}
	waitFor(t, "the registered site measured, answered by the probe's own reflector, on both uplinks", 20*time.Second, answered("mesh-dvo-01-udp"))

	reg.set(http.StatusOK, site("bag-01", "Baguio", own))
	want := []string{"Globe/mesh-bag-01-udp", "PLDT/mesh-bag-01-udp"}
	waitFor(t, "the new site measured and the removed one no longer exported", 20*time.Second, func() bool {
		return slices.Equal(exportedTargets(recv), want)
	})

	before := reg.requests()
	reg.set(http.StatusServiceUnavailable)
	waitFor(t, "three failed refreshes", 20*time.Second, func() bool { return reg.requests() >= before+3 })
	waitFor(t, "the failures counted", 5*time.Second, func() bool {
		for _, rm := range recv.latest() {
			if sumFor(metricsByName(rm)[MetricMeshRefreshFailures], "", "") >= 3 {
				return true
			}
		}
		return false
	})
	if got := exportedTargets(recv); !slices.Equal(got, want) {
		t.Errorf("while the registry fails the last good set is measured: %v, want %v", got, want)
	}
	if n := logs.count("mesh registry not fetched"); n != 1 {
		t.Errorf("%d warnings for one run of failed refreshes, want 1", n)
	}
	reg.set(http.StatusOK, site("bag-01", "Baguio", own))
	waitFor(t, "the recovery logged", 10*time.Second, func() bool { return logs.count("mesh registry fetched again") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for _, a := range reg.auth {
		if a != "Bearer s3cret" {
			t.Fatalf("registry asked with %q, want the probe's OTLP token", a)
		}
	}
}

// freeUDPAddr is a loopback UDP address that was free a moment ago.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// hasLatency says whether target has answered probes in the histogram m.
func hasLatency(m *metricspb.Metric, target string) bool {
	for _, dp := range m.GetHistogram().GetDataPoints() {
		if attrs(dp.Attributes)["target"] == target && dp.GetCount() > 0 {
			return true
		}
	}
	return false
}

// TestMeshRestartWhileCollectorDown: with queue.dir the last good answer
// is kept, so a probe restarted while the registry cannot be fetched
// measures the sites it last knew instead of nothing.
func TestMeshRestartWhileCollectorDown(t *testing.T) {
	recv, reg, cfg, own := meshSetup(t)
	cfg.Queue.Dir = t.TempDir()
	stop := runAgent(t, cfg, slog.New(&logRecorder{}))
	waitFor(t, "the site measured", 20*time.Second, func() bool {
		return slices.Equal(exportedTargets(recv), []string{"Globe/mesh-dvo-01-udp", "PLDT/mesh-dvo-01-udp"})
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	reg.set(http.StatusServiceUnavailable)
	asked := reg.requests()
	second := testenv.FreeAddr(t)
	recv = startReceiver(t, second)
	dir := cfg.Queue.Dir
	cfg = meshConfig(t, second, cfg.Mesh.Collector, own)
	cfg.Queue.Dir = dir
	logs := &logRecorder{}
	stop = runAgent(t, cfg, slog.New(logs))
	waitFor(t, "the last known site measured after the restart", 20*time.Second, func() bool {
		return slices.Equal(exportedTargets(recv), []string{"Globe/mesh-dvo-01-udp", "PLDT/mesh-dvo-01-udp"})
	})
	if reg.requests() == asked {
		t.Error("the restarted probe did not ask the registry")
	}
	if logs.count("measuring the sites of the last mesh registry answer") != 1 {
		t.Error("the restarted probe did not say it uses the last answer")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
