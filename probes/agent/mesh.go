package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bantay-noc/bantay/internal/meshreg"
	"github.com/bantay-noc/bantay/internal/metricmodel"
	"github.com/bantay-noc/bantay/probes/config"
)

// Mesh refresh failure causes, the cause of bantay.probe.mesh.refresh_failures.
const (
	meshUnreachable = "unreachable" // no answer
	meshRefused     = "refused"     // the collector refused the request (a token it does not know: 401)
	meshUnavailable = "unavailable" // the collector answered 5xx (its registry not loaded yet)
	meshInvalid     = "invalid"     // an answer the probe cannot read, or for another probe
)

var meshCauses = []string{meshUnreachable, meshRefused, meshUnavailable, meshInvalid}

// Metrics of mesh mode, on the first uplink (they are the probe's, not an uplink's).
const (
	MetricMeshRefreshFailures = "bantay.probe.mesh.refresh_failures"
	MetricMeshTargets         = "bantay.probe.mesh.targets"
)

// maxMeshAnswer bounds what is read of a registry answer: a site is about
// 200 bytes, so this is some 20,000 sites.
const maxMeshAnswer = 4 << 20

// mesh keeps the agent's targets from the collector's mesh registry: it
// fetches the registry every refresh, starts a job on every uplink for a
// target that appeared and stops the jobs of one that went. When a fetch
// fails the targets it has stay.
//
// A removed target's series must go stale (a heatmap cell and the store's
// series stop being fed), but the OTel SDK keeps exporting every attribute
// set it has recorded, cumulatively, for ever. So each uplink's reader
// exports through liveExporter, which drops the points of targets that are
// not live; a target that comes back continues its counters.
type mesh struct {
	a      *Agent
	url    string
	token  string
	client *http.Client
	logger *slog.Logger

	// live are the targets whose points are exported, the file's and the
	// running mesh targets, by liveKey.
	live atomic.Pointer[map[string]struct{}]

	// running mesh targets, by name; only the refresh loop touches it.
	running map[string]*meshTarget
	wg      sync.WaitGroup

	// For the log: whether the last fetch failed, how many in a row, and
	// the problems of the last answer (each logged when it first appears).
	failing      int
	lastProblems map[string]bool

	// cache is where the last good answer is kept (empty without
	// queue.dir), so that a probe restarted while the collector is
	// unreachable measures the sites it last knew; saved is what it holds.
	cache string
	saved []byte

	failures [4]atomic.Int64 // by meshCauses index
	targets  atomic.Int64
}

// meshTarget is one mesh target's jobs, one per uplink.
type meshTarget struct {
	target config.Target
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newMesh(a *Agent) (*mesh, error) {
	token, err := a.cfg.Collector.BearerToken()
	if err != nil {
		return nil, fmt.Errorf("collector.token_file: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if !a.cfg.Collector.TLS.Insecure {
		if tr.TLSClientConfig, err = clientTLS(a.cfg.Collector.TLS); err != nil {
			return nil, err
		}
	}
	m := &mesh{
		a: a, token: token, logger: a.logger.With("mesh", a.cfg.Mesh.Collector),
		url:     strings.TrimSuffix(a.cfg.Mesh.Collector, "/") + meshreg.Path,
		client:  &http.Client{Timeout: a.cfg.Collector.Timeout, Transport: tr},
		running: map[string]*meshTarget{},
	}
	if a.cfg.Queue.Dir != "" {
		m.cache = filepath.Join(a.cfg.Queue.Dir, meshCacheFile)
	}
	m.setLive()
	return m, nil
}

// meshCacheFile is the last good registry answer, in queue.dir.
const meshCacheFile = "mesh.json"

// restore applies the answer kept by an earlier run, if any: the probe
// measures the sites it last knew until the collector answers.
func (m *mesh) restore(ctx context.Context) {
	if m.cache == "" {
		return
	}
	data, err := os.ReadFile(m.cache)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var ans meshreg.Answer
	if err == nil {
		err = json.Unmarshal(data, &ans)
	}
	if err == nil && ans.Probe != m.a.cfg.Probe.ID {
		err = fmt.Errorf("it is probe %q's", ans.Probe)
	}
	if err != nil {
		m.logger.Warn("last mesh registry answer not used", "file", m.cache, "error", err)
		return
	}
	m.saved = data
	m.logger.Info("measuring the sites of the last mesh registry answer until the collector answers", "file", m.cache)
	m.use(ctx, ans)
}

// save keeps ans for the next start (written aside and renamed, so a crash
// leaves the old answer or the new one). A failure costs only that.
func (m *mesh) save(ans meshreg.Answer) {
	if m.cache == "" {
		return
	}
	data, err := json.Marshal(ans)
	if err != nil || bytes.Equal(data, m.saved) {
		return
	}
	tmp := m.cache + ".tmp"
	if err = os.WriteFile(tmp, data, 0o600); err == nil {
		err = os.Rename(tmp, m.cache)
	}
	if err != nil {
		m.logger.Warn("mesh registry answer not kept for the next start", "file", m.cache, "error", err)
		return
	}
	m.saved = data
}

// setLive makes the file's targets and the running mesh targets live.
func (m *mesh) setLive() {
	live := make(map[string]struct{}, len(m.a.cfg.Targets)+len(m.running))
	for _, t := range m.a.cfg.Targets {
		live[liveKey(t.Name, t.DstCity)] = struct{}{}
	}
	for _, t := range m.running {
		live[liveKey(t.target.Name, t.target.DstCity)] = struct{}{}
	}
	m.live.Store(&live)
}

// run refreshes until ctx is done, then stops every mesh target's jobs.
// Until the first answer it asks every few seconds, so a probe started
// with its collector measures soon; after that every refresh (±10%).
func (m *mesh) run(ctx context.Context) {
	rng := newRand()
	timer := time.NewTimer(0)
	defer timer.Stop()
	m.restore(ctx)
	known := false
	for {
		select {
		case <-ctx.Done():
			for _, t := range m.running {
				t.cancel()
			}
			m.wg.Wait()
			return
		case <-timer.C:
		}
		if m.refresh(ctx) {
			known = true
		}
		next := jittered(m.a.cfg.Mesh.Refresh, rng)
		if !known {
			next = min(next, 5*time.Second)
		}
		timer.Reset(next)
	}
}

// refresh fetches the registry and applies it; false when the fetch
// failed (the targets stay as they are).
func (m *mesh) refresh(ctx context.Context) bool {
	ans, cause, err := m.fetch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		m.failures[slices.Index(meshCauses, cause)].Add(1)
		m.failing++
		if m.failing == 1 {
			m.logger.Warn("mesh registry not fetched; measuring the sites it last listed until it is", "cause", cause,
				"error", err, "targets", len(m.running))
		} else {
			m.logger.Debug("mesh registry still not fetched", "cause", cause, "error", err, "consecutive_failures", m.failing)
		}
		return false
	}
	if m.failing > 0 {
		m.logger.Info("mesh registry fetched again", "after_failures", m.failing)
		m.failing = 0
	}
	m.use(ctx, ans)
	m.save(ans)
	return true
}

// use measures the targets of ans.
func (m *mesh) use(ctx context.Context, ans meshreg.Answer) {
	targets, problems := m.a.cfg.MeshTargets(ans)
	seen := make(map[string]bool, len(problems))
	for _, p := range problems {
		seen[p.Error()] = true
		if !m.lastProblems[p.Error()] {
			m.logger.Warn("mesh registry entry left out", "error", p)
		}
	}
	m.lastProblems = seen
	m.apply(ctx, targets)
}

// fetch GETs the registry with the probe's token.
func (m *mesh) fetch(ctx context.Context) (meshreg.Answer, string, error) {
	var ans meshreg.Answer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return ans, meshInvalid, err
	}
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	req.Header.Set(probeIDHeader, m.a.cfg.Probe.ID)
	resp, err := m.client.Do(req)
	if err != nil {
		return ans, meshUnreachable, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMeshAnswer+1))
	switch {
	case err != nil:
		return ans, meshUnreachable, err
	case resp.StatusCode/100 == 5:
		return ans, meshUnavailable, fmt.Errorf("HTTP %d: %s", resp.StatusCode, firstLine(body))
	case resp.StatusCode != http.StatusOK:
		return ans, meshRefused, fmt.Errorf("HTTP %d: %s", resp.StatusCode, firstLine(body))
	case len(body) > maxMeshAnswer:
		return ans, meshInvalid, fmt.Errorf("answer larger than %d bytes", maxMeshAnswer)
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return ans, meshInvalid, fmt.Errorf("answer is not a mesh registry: %w", err)
	}
	if ans.Probe != m.a.cfg.Probe.ID {
		// The token is another probe's: measuring its mesh would measure
		// the wrong matrix, and the collector refuses its data anyway.
		return ans, meshInvalid, fmt.Errorf("the collector says the token is probe %q's, not %q's", ans.Probe, m.a.cfg.Probe.ID)
	}
	return ans, "", nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// apply runs exactly targets as the mesh targets: a target that is new or
// changed (another city or address under its name) starts on every
// uplink, one that is gone stops and its points are no longer exported.
func (m *mesh) apply(ctx context.Context, targets []config.Target) {
	want := make(map[string]config.Target, len(targets))
	for _, t := range targets {
		want[t.Name] = t
	}
	var added, removed []string
	for _, name := range slices.Sorted(maps.Keys(m.running)) {
		if t, ok := want[name]; ok && t == m.running[name].target {
			continue
		}
		m.running[name].cancel()
		m.running[name].done.Wait()
		delete(m.running, name)
		removed = append(removed, name)
	}
	for _, t := range targets {
		if _, ok := m.running[t.Name]; ok {
			continue
		}
		if err := m.start(ctx, t); err != nil {
			m.logger.Warn("mesh target not started", "target", t.Name, "error", err)
			continue
		}
		added = append(added, t.Name)
	}
	// Added targets are live before their first round, removed ones
	// stopped before they are dropped from the export.
	m.setLive()
	m.targets.Store(int64(len(m.running)))
	if len(added)+len(removed) > 0 {
		m.logger.Info("mesh targets changed", "added", added, "removed", removed, "targets", len(m.running))
	}
}

// start runs t on every uplink.
func (m *mesh) start(ctx context.Context, t config.Target) error {
	jobs := make([]*job, len(m.a.uplink))
	for i, u := range m.a.uplink {
		p, err := u.newProber(t)
		if err != nil {
			return err
		}
		jobs[i] = newJob(t, p, u.inst, u.logger.With("target", t.Name))
	}
	m.a.raiseMemoryLimit(&t, len(jobs))
	tctx, cancel := context.WithCancel(ctx)
	mt := &meshTarget{target: t, cancel: cancel}
	for _, j := range jobs {
		mt.done.Add(1)
		m.wg.Go(func() {
			defer mt.done.Done()
			j.run(tctx, newRand())
		})
	}
	m.running[t.Name] = mt
	return nil
}

// registerMeshMetrics counts failed refreshes by cause and reports the
// mesh targets running, on meter (the first uplink's).
func registerMeshMetrics(m metric.Meter, ms *mesh, city string) error {
	failures, err := m.Int64ObservableCounter(MetricMeshRefreshFailures, metric.WithUnit("{refresh}"),
		metric.WithDescription("Mesh registry fetches that failed, by cause: unreachable, refused, unavailable, invalid."))
	if err != nil {
		return err
	}
	targets, err := m.Int64ObservableGauge(MetricMeshTargets, metric.WithUnit("{target}"),
		metric.WithDescription("Targets taken from the mesh registry being measured (on every uplink)."))
	if err != nil {
		return err
	}
	here := attribute.String(metricmodel.AttrDstCity, city)
	causes := make([]metric.ObserveOption, len(meshCauses))
	for i, c := range meshCauses {
		causes[i] = metric.WithAttributes(here, attribute.String("cause", c))
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i := range meshCauses {
			o.ObserveInt64(failures, ms.failures[i].Load(), causes[i])
		}
		o.ObserveInt64(targets, ms.targets.Load(), metric.WithAttributes(here))
		return nil
	}, failures, targets)
	return err
}
