package bantayextension

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension"
	"github.com/bantay-noc/bantay/internal/meshreg"
)

// MeshConfig turns on the mesh registry endpoint (meshreg.Path): probes in
// mesh mode fetch from it the sites they measure.
type MeshConfig struct {
	// Authenticator is the probe authenticator (probeauth) whose tokens the
	// endpoint accepts: a probe asks with the bearer token it sends OTLP
	// with, checked by the same code. Empty: no endpoint.
	Authenticator component.ID `mapstructure:"authenticator"`
}

// Mesh registry answers, the result label of bantay_mesh_registry_requests_total.
const (
	meshOK              = "ok"
	meshUnauthenticated = "unauthenticated"
	meshNotReady        = "not_ready"
)

// meshEndpoint answers a probe's GET of meshreg.Path with every other
// registered site that has a reflector.
type meshEndpoint struct {
	auth     extensionauth.Server
	s        *Server
	requests *prometheus.CounterVec
}

var _ extensioncapabilities.Dependent = (*Server)(nil)

// Dependencies makes the collector start the mesh authenticator before the
// listener serves probes with it, whatever the order of service.extensions.
func (s *Server) Dependencies() []component.ID {
	if id := s.cfg.Mesh.Authenticator; id != (component.ID{}) {
		return []component.ID{id}
	}
	return nil
}

// newMeshEndpoint finds the authenticator named in the config; nil when
// the endpoint is off.
func (s *Server) newMeshEndpoint(host component.Host) (*meshEndpoint, error) {
	id := s.cfg.Mesh.Authenticator
	if id == (component.ID{}) {
		return nil, nil
	}
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("mesh::authenticator: extension %q is not configured; add it under extensions and service.extensions", id)
	}
	auth, ok := ext.(extensionauth.Server)
	if !ok {
		return nil, fmt.Errorf("mesh::authenticator: extension %q is a %T, not a server authenticator such as probeauth", id, ext)
	}
	m := &meshEndpoint{auth: auth, s: s, requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bantay_mesh_registry_requests_total",
		Help: "Requests for the mesh registry (" + meshreg.Path + "), by result: ok, unauthenticated, not_ready.",
	}, []string{"result"})}
	for _, r := range []string{meshOK, meshUnauthenticated, meshNotReady} {
		m.requests.WithLabelValues(r)
	}
	if err := s.reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *meshEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, err := m.auth.Authenticate(r.Context(), r.Header)
	probe := ""
	if err == nil {
		if info := client.FromContext(ctx); info.Auth != nil {
			probe, _ = info.Auth.GetAttribute(probeauthextension.ProbeIDAttribute).(string)
		}
		if probe == "" {
			err = fmt.Errorf("extension %s authenticated the request but named no probe", m.s.cfg.Mesh.Authenticator)
		}
	}
	if err != nil {
		// The authenticator has counted and reported the refusal itself.
		m.requests.WithLabelValues(meshUnauthenticated).Inc()
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "mesh registry: "+err.Error(), http.StatusUnauthorized)
		return
	}
	sites, ok := m.s.meshSites()
	if !ok {
		// Between the extension's start and citytag's, or with no citytag:
		// the probe keeps the sites it has and asks again.
		m.requests.WithLabelValues(meshNotReady).Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "mesh registry: no citytag processor has shared its probe registry (yet)", http.StatusServiceUnavailable)
		return
	}
	ans := meshreg.Answer{Probe: probe, Sites: []meshreg.Site{}}
	for _, site := range sites {
		if site.Probe != probe {
			ans.Sites = append(ans.Sites, site)
		}
	}
	m.requests.WithLabelValues(meshOK).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(ans)
}

// ShareMesh takes the mesh registry a citytag processor built from its
// probe registry (it calls this at its Start, after every reload). With
// several citytag processors the one with the lowest id is served, as for
// the gazetteer.
func (s *Server) ShareMesh(from component.ID, sites []meshreg.Site) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.mesh == nil {
		s.mesh = map[component.ID][]meshreg.Site{}
	}
	s.mesh[from] = sites
}

// meshSites is the mesh registry served, and whether one was shared.
func (s *Server) meshSites() ([]meshreg.Site, bool) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if len(s.mesh) == 0 {
		return nil, false
	}
	ids := make([]component.ID, 0, len(s.mesh))
	for id := range s.mesh {
		ids = append(ids, id)
	}
	return s.mesh[slices.MinFunc(ids, func(a, b component.ID) int { return cmp.Compare(a.String(), b.String()) })], true
}
