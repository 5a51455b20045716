package hub

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/bantay-noc/bantay/heatmap/wire"
)

// Paths served by Handler.
const (
	PathWS        = "/ws"
	PathSnapshot  = "/api/heatmap/snapshot"
	PathDrilldown = "/api/heatmap/drilldown"
)

// writePool shares write buffers between connections: the hub writes its
// frames to the socket itself, and gorilla only needs a buffer for a
// message it writes, which it never does, so a connection holds none
// (this is what keeps a connection in the low kilobytes).
type writePool struct{ p sync.Pool }

func (w *writePool) Get() interface{}  { return w.p.Get() }
func (w *writePool) Put(v interface{}) { w.p.Put(v) }

type server struct {
	h *Hub
	// upgraders[true] negotiates permessage-deflate, [false] does not: the
	// hub writes compressed frames itself, so it must know which
	// connections have it, which gorilla does not say (offersDeflate).
	upgraders map[bool]*websocket.Upgrader
	mux       *http.ServeMux
}

func newServer(h *Hub) *server {
	s := &server{h: h, mux: http.NewServeMux(), upgraders: map[bool]*websocket.Upgrader{}}
	u := websocket.Upgrader{
		ReadBufferSize:    1024,
		WriteBufferSize:   1024,
		WriteBufferPool:   &writePool{},
		Subprotocols:      []string{wire.Subprotocol},
		EnableCompression: true,
		// Origin is checked before Upgrade (to count refusals by reason).
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			h.m.upgradesRefuse.WithLabelValues("handshake").Inc()
			http.Error(w, "websocket handshake failed: "+reason.Error(), status)
		},
	}
	plain := u
	plain.EnableCompression = false
	s.upgraders[true], s.upgraders[false] = &u, &plain
	s.mux.HandleFunc(PathWS, s.serveWS)
	s.mux.HandleFunc(PathSnapshot, s.serveSnapshot)
	s.mux.HandleFunc(PathDrilldown, s.serveDrilldown)
	return s
}

func (s *server) refuse(w http.ResponseWriter, reason string, status int, msg string) {
	s.h.m.upgradesRefuse.WithLabelValues(reason).Inc()
	http.Error(w, msg, status)
}

// authorized checks the optional token (header or ?token=).
func (s *server) authorized(r *http.Request) bool {
	want := s.h.cfg.Token
	if want == "" {
		return true
	}
	got := r.URL.Query().Get("token")
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		got = strings.TrimPrefix(a, "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// originAllowed accepts non-browser clients (no Origin), the same origin,
// and the configured allow list.
func (s *server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, a := range s.h.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// subscriptionFromQuery reads carrier, network_type, window and statistic.
func (s *server) subscriptionFromQuery(q url.Values) (wire.Subscription, *wire.Error) {
	return s.h.parser.Subscription(q["carrier"], q["network_type"], q.Get("window"), q.Get("statistic"))
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.refuse(w, "unauthorized", http.StatusUnauthorized, "missing or wrong token (Authorization: Bearer or ?token=)")
		return
	}
	if !s.originAllowed(r) {
		s.refuse(w, "origin", http.StatusForbidden, "origin "+r.Header.Get("Origin")+" is not allowed")
		return
	}
	sub, perr := s.subscriptionFromQuery(r.URL.Query())
	if perr != nil {
		s.refuse(w, "bad_request", http.StatusBadRequest, strings.Replace(perr.Msg, "field", "parameter", 1))
		return
	}
	if s.h.slots.Add(1) > int64(s.h.cfg.MaxConnections) {
		s.h.slots.Add(-1)
		w.Header().Set("Retry-After", "5")
		s.refuse(w, "too_many_connections", http.StatusServiceUnavailable, "too many websocket connections")
		return
	}
	compress := offersDeflate(r.Header)
	conn, err := s.upgraders[compress].Upgrade(w, r, nil)
	if err != nil {
		s.h.slots.Add(-1)
		return // Upgrader.Error answered and counted
	}
	c := newClient(s.h, conn, compress, s.h.nextWriter())
	if !s.h.register(c, sub) {
		s.h.slots.Add(-1)
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"))
		_ = conn.Close()
		return
	}
	go c.readLoop()
}

func (s *server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.refuse(w, "method", http.StatusMethodNotAllowed, "use GET")
		return
	}
	if !s.authorized(r) {
		s.refuse(w, "unauthorized", http.StatusUnauthorized, "missing or wrong token (Authorization: Bearer or ?token=)")
		return
	}
	sub, perr := s.subscriptionFromQuery(r.URL.Query())
	if perr != nil {
		s.refuse(w, "bad_request", http.StatusBadRequest, strings.Replace(perr.Msg, "field", "parameter", 1))
		return
	}
	s.h.mu.Lock()
	body := s.h.snapshot(nil, sub, "")
	s.h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

func (s *server) serveDrilldown(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.refuse(w, "method", http.StatusMethodNotAllowed, "use GET")
		return
	}
	if !s.authorized(r) {
		s.refuse(w, "unauthorized", http.StatusUnauthorized, "missing or wrong token (Authorization: Bearer or ?token=)")
		return
	}
	id := r.URL.Query().Get("cell")
	if id == "" {
		s.refuse(w, "bad_request", http.StatusBadRequest, "parameter \"cell\" is missing (a cell id such as Manila|Davao|Globe|5g)")
		return
	}
	s.h.mu.Lock()
	body, ok := s.h.fullDrill(id, "")
	s.h.mu.Unlock()
	if !ok {
		s.refuse(w, "unknown_cell", http.StatusNotFound, "no cell with id "+wire.Quote(id))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// Paths lists the URL paths Handler serves, for the collector's mux.
func Paths() []string { return []string{PathWS, PathSnapshot, PathDrilldown} }
