// Package hub serves the heatmap to browsers: it fans the aggregation's
// changed cells out to websocket clients (one encoding per subscription
// group per tick, a bounded queue per connection that coalesces into a
// snapshot when a client falls behind), answers their requests, and serves
// the snapshot and drill-down HTTP endpoints. The frames are heatmap/wire's.
package hub

import (
	"cmp"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
	"github.com/bantay-noc/bantay/heatmap/wire"
	"github.com/bantay-noc/bantay/internal/gazetteer"
	"github.com/gorilla/websocket"
)

// group is the set of clients with one wire.Subscription. Its frames are encoded
// once per tick and shared.
type group struct {
	key     string
	sub     wire.Subscription
	clients map[*client]struct{}
	snap    *frame // the snapshot at snapSeq, built lazily
	snapSeq uint64
}

// drill is the set of clients watching one cell's drill-down.
type drill struct {
	watchers map[*client]struct{}
	full     *frame // the full drill-down at fullSeq, for resyncs
	fullSeq  uint64
	// bounds are the bucket bounds of the columns the watchers last got:
	// a cell's drill-down changes layout when its samples come to have
	// native buckets (or cease to), and a drilldown_update carries none,
	// so the watchers are sent a full drilldown then (aggregate.Drill).
	bounds []float64
}

// Hub owns the last broadcast state of every cell and fans it out. Lock
// order: hub.mu, then aggregator.mu, then client.qmu, then writer.mu.
type Hub struct {
	cfg    Config
	acfg   aggregate.Config // the aggregation's windows, resolution, bounds
	agg    *aggregate.Aggregator
	m      *metrics
	log    *slog.Logger
	parser *wire.Parser
	srv    *server

	bmu sync.Mutex // serialises broadcasts

	// slots counts connections, taken before the upgrade so the limit holds
	// even while handshakes are in flight.
	slots atomic.Int64

	// writers write every connection's frames (writer.go); assigned
	// spreads connections over them. stop ends them and the pinger.
	writers  []*writer
	assigned atomic.Uint64
	stop     chan struct{}
	loops    sync.WaitGroup

	mu       sync.Mutex
	seq      uint64
	nowMs    int64
	views    map[string]*aggregate.View
	ids      []string // sorted keys of views
	idsDirty bool
	meta     []byte // `"carriers":[...],"network_types":[...],"cities":[...],"rebuilding":…`
	metaSig  string
	// metaDue: meta was rebuilt outside a tick (a new gazetteer); the next
	// delta carries it.
	metaDue bool
	// rebuilding: the cells are being refilled from the store (SetRebuilding).
	rebuilding bool
	groups     map[string]*group
	clients    map[*client]struct{}
	drills     map[string]*drill
	closed     bool
	cityRank   map[string]int
	feed       feedRing // the last events, for snapshots (feed.go)
}

// New validates cfg (zero fields take defaults) and returns a hub that
// serves agg's cells, placing cities with gaz (nil: the shipped
// gazetteer). Broadcast brings it to a time; Handler serves it; Close
// disconnects every client. Its metrics are registered by whoever serves
// them (Collectors). A nil logger discards.
func New(cfg Config, agg *aggregate.Aggregator, gaz *gazetteer.Gazetteer, log *slog.Logger) (*Hub, error) {
	acfg := agg.Config()
	defWin, err := cfg.DefaultWindowIn(acfg.Windows)
	err = errors.Join(cfg.Validate(), err)
	if err != nil {
		return nil, err
	}
	if gaz == nil {
		gaz = gazetteer.Default()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg: cfg.WithDefaults(), acfg: acfg, agg: agg, m: newMetrics(), log: log,
		views:    map[string]*aggregate.View{},
		groups:   map[string]*group{},
		clients:  map[*client]struct{}{},
		drills:   map[string]*drill{},
		cityRank: map[string]int{},
	}
	var windows []string
	for _, w := range acfg.Windows {
		windows = append(windows, pathstate.WindowName(w))
	}
	h.parser = wire.NewParser(windows, defWin, gaz)
	h.useGazetteer(gaz)
	h.srv = newServer(h)
	h.startWriters()
	return h, nil
}

// Collectors are the hub's metrics (bantay_heatmap_ws_*,
// bantay_heatmap_broadcast_duration_seconds), to be registered.
func (h *Hub) Collectors() []prometheus.Collector { return h.m.collectors() }

// Gazetteer returns the gazetteer in use now.
func (h *Hub) Gazetteer() *gazetteer.Gazetteer { return h.parser.Gazetteer() }

// Connections returns the number of open websocket connections.
func (h *Hub) Connections() int { return h.connCount() }

// Handler serves /ws, /api/heatmap/snapshot and /api/heatmap/drilldown
// (the full paths, Paths; mount it on those paths or on "/").
func (h *Hub) Handler() http.Handler { return h.srv.mux }

// useGazetteer makes g the source of city order, region, island group and
// coordinates (h.parser.gaz, which also canonicalises filters), and
// rebuilds the meta part of every frame. Caller holds h.mu (or owns h, in
// New).
func (h *Hub) useGazetteer(g *gazetteer.Gazetteer) {
	h.parser.SetGazetteer(g)
	clear(h.cityRank)
	for i, c := range g.Cities() {
		h.cityRank[c.Name] = i
	}
	h.meta = h.buildMeta()
}

// SetGazetteer swaps the gazetteer while clients are connected: snapshots
// from now on carry the new meta, and the next tick sends it in a delta to
// every group (even with no cell changed), so open pages redraw the matrix
// order and the map. nil restores the shipped gazetteer.
func (h *Hub) SetGazetteer(g *gazetteer.Gazetteer) {
	if g == nil {
		g = gazetteer.Default()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.useGazetteer(g)
	h.metaDue = true
	for _, gr := range h.groups {
		gr.snap = nil // cached snapshots carry the old meta
	}
}

// Broadcast runs one tick: brings the aggregation to `now`, records the
// changed views and queues one delta per group and one update per open
// drill-down. It returns the tick's path state changes.
func (h *Hub) Broadcast(now time.Time) []pathstate.Event {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	began := time.Now()
	changed, removed, events := h.agg.Collect(now)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return events
	}
	h.seq++
	h.nowMs = now.UnixMilli()
	for _, c := range changed {
		if _, ok := h.views[c.View.ID]; !ok {
			h.idsDirty = true
		}
		h.views[c.View.ID] = c.View
	}
	for _, id := range removed {
		delete(h.views, id)
		h.idsDirty = true
	}
	metaChanged := h.metaDue
	h.metaDue = false
	if h.idsDirty {
		h.sortIDs()
		if sig := h.metaSignature(); sig != h.metaSig {
			h.metaSig = sig
			h.meta = h.buildMeta()
			metaChanged = true
		}
	}

	var buf []byte
	for _, g := range h.groups {
		if len(g.clients) == 0 {
			continue
		}
		bit := uint32(1) << g.sub.Window
		buf = h.deltaHead(buf[:0], g)
		n := 0
		for _, c := range changed {
			if c.Mask&bit == 0 || !g.sub.Matches(c.View.Key) {
				continue
			}
			if n > 0 {
				buf = append(buf, ',')
			}
			buf = wire.AppendCell(buf, c.View, g.sub.Window, g.sub.Statistic)
			n++
		}
		buf = append(buf, `],"removed":`...)
		buf = wire.AppendStrings(buf, removed)
		if metaChanged {
			buf = append(buf, ',')
			buf = append(buf, h.meta...)
		}
		buf = append(buf, '}')
		if n == 0 && len(removed) == 0 && !metaChanged {
			continue
		}
		f := newFrame("delta", buf)
		f.born = began.UnixNano()
		h.m.encoded.Inc()
		for c := range g.clients {
			c.enqueue(f)
		}
	}

	if len(h.drills) > 0 {
		gone := map[string]bool{}
		for _, id := range removed {
			gone[id] = true
		}
		touched := map[string]*aggregate.View{}
		for _, c := range changed {
			if _, ok := h.drills[c.View.ID]; ok {
				touched[c.View.ID] = c.View
			}
		}
		for id, d := range h.drills {
			if gone[id] {
				f := newFrame("drilldown_end", wire.DrilldownEndFrame(id, "cell expired"))
				for c := range d.watchers {
					c.drill = ""
					c.enqueue(f)
				}
				delete(h.drills, id)
				continue
			}
			// The two newest columns change with live data; a backlog
			// (late points) changes older ones, which are sent too.
			n := h.agg.TakeBackfilled(id, now)
			if _, ok := touched[id]; !ok && n == 0 {
				continue
			}
			v, dr, ok := h.agg.Drilldown(id, now, max(2, n))
			if !ok || v == nil {
				continue
			}
			var f *frame
			if slices.Equal(dr.Bounds, d.bounds) {
				f = newFrame("drilldown_update", h.drillFrame(nil, "drilldown_update", "", v, dr, false))
			} else if data, ok := h.fullDrill(id, ""); ok {
				f = newFrame("drilldown", data)
				d.bounds = dr.Bounds
			} else {
				continue
			}
			h.m.encoded.Inc()
			for c := range d.watchers {
				c.enqueue(f)
			}
		}
	}

	high := 0
	for c := range h.clients {
		high = max(high, c.queueLen())
	}
	h.m.queueHighWater.Set(float64(high))
	h.m.broadcastDur.Observe(time.Since(began).Seconds())
	return events
}

func (h *Hub) sortIDs() {
	h.ids = h.ids[:0]
	for id := range h.views {
		h.ids = append(h.ids, id)
	}
	slices.Sort(h.ids)
	h.idsDirty = false
}

// metaSignature is a cheap fingerprint of the city/carrier/network type sets.
func (h *Hub) metaSignature() string {
	cities, carriers, nts := h.sets()
	return stringsKey(cities) + "\x00" + stringsKey(carriers) + "\x00" + stringsKey(nts)
}

func stringsKey(ss []string) string {
	n := 0
	for _, s := range ss {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range ss {
		b = append(b, s...)
		b = append(b, 0)
	}
	return string(b)
}

// sets returns the cities (in island-group order), carriers and network
// types present in the cells.
func (h *Hub) sets() (cities, carriers, nts []string) {
	cs, ca, nt := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, v := range h.views {
		cs[v.Key.SrcCity], cs[v.Key.DstCity] = true, true
		ca[v.Key.Carrier], nt[v.Key.NetworkType] = true, true
	}
	for c := range cs {
		cities = append(cities, c)
	}
	slices.SortFunc(cities, func(a, b string) int {
		ra, oka := h.cityRank[a]
		rb, okb := h.cityRank[b]
		switch {
		case oka && okb:
			return cmp.Compare(ra, rb)
		case oka:
			return -1
		case okb:
			return 1
		}
		return cmp.Compare(a, b)
	})
	for c := range ca {
		carriers = append(carriers, c)
	}
	for n := range nt {
		nts = append(nts, n)
	}
	slices.Sort(carriers)
	slices.Sort(nts)
	return cities, carriers, nts
}

// SetRebuilding says whether the cells are being refilled from the store
// after a start (the collector is ready; the wall fills in when it is
// done). Snapshots from now on carry it, and the next tick sends it in a
// delta, as new cities are sent.
func (h *Hub) SetRebuilding(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rebuilding == on {
		return
	}
	h.rebuilding = on
	h.meta = h.buildMeta()
	h.metaDue = true
	for _, gr := range h.groups {
		gr.snap = nil // cached snapshots carry the old meta
	}
}

func (h *Hub) buildMeta() []byte {
	gaz := h.parser.Gazetteer()
	cities, carriers, nts := h.sets()
	b := append([]byte(nil), `"carriers":`...)
	b = wire.AppendStrings(b, carriers)
	b = append(b, `,"network_types":`...)
	b = wire.AppendStrings(b, nts)
	b = append(b, `,"cities":[`...)
	for i, name := range cities {
		if i > 0 {
			b = append(b, ',')
		}
		c, ok := gaz.City(name)
		if !ok || c.Name != name {
			c = gazetteer.City{Name: name}
		}
		b = append(b, `{"name":`...)
		b = wire.AppendString(b, c.Name)
		b = append(b, `,"region":`...)
		b = wire.AppendString(b, c.Region)
		b = append(b, `,"island_group":`...)
		b = wire.AppendString(b, c.IslandGroup)
		b = append(b, `,"latitude":`...)
		if ok {
			b = wire.AppendFloat(b, c.Latitude)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"longitude":`...)
		if ok {
			b = wire.AppendFloat(b, c.Longitude)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"rebuilding":`...)
	return strconv.AppendBool(b, h.rebuilding)
}

// appendWindow renders "window":{"name","from","to"} for window wi at the
// last broadcast time. The window covers the slots (cur-L, cur], i.e. from
// the start of its oldest slot to now.
func (h *Hub) appendWindow(b []byte, wi int) []byte {
	w := h.acfg.Windows[wi]
	res := h.acfg.Resolution.Milliseconds()
	cur := h.nowMs / res
	from := (cur - int64(w/h.acfg.Resolution) + 1) * res
	b = append(b, `"window":{"name":`...)
	b = wire.AppendString(b, pathstate.WindowName(w))
	b = append(b, `,"from":`...)
	b = strconv.AppendInt(b, from, 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendInt(b, h.nowMs, 10)
	return append(b, '}')
}

func (h *Hub) deltaHead(b []byte, g *group) []byte {
	b = wire.AppendHead(b, "delta")
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, h.seq, 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, h.nowMs, 10)
	b = append(b, ',')
	b = h.appendWindow(b, g.sub.Window)
	return append(b, `,"cells":[`...)
}

// snapshot renders the full state for a wire.Subscription. Caller holds h.mu.
func (h *Hub) snapshot(b []byte, sub wire.Subscription, ref string) []byte {
	b = wire.AppendHead(b, "snapshot")
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, h.seq, 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, h.nowMs, 10)
	if ref != "" {
		b = append(b, `,"ref":`...)
		b = wire.AppendString(b, ref)
	}
	b = append(b, `,"interval_ms":`...)
	b = strconv.AppendInt(b, h.cfg.BroadcastInterval.Milliseconds(), 10)
	b = append(b, `,"resolution_ms":`...)
	b = strconv.AppendInt(b, h.acfg.Resolution.Milliseconds(), 10)
	b = append(b, `,"subscription":{"carriers":`...)
	b = wire.AppendStrings(b, sub.Carriers)
	b = append(b, `,"network_types":`...)
	b = wire.AppendStrings(b, sub.NetworkTypes)
	b = append(b, `,"window":`...)
	b = wire.AppendString(b, h.parser.Windows()[sub.Window])
	b = append(b, `,"statistic":`...)
	b = wire.AppendString(b, sub.Statistic)
	b = append(b, `},`...)
	b = h.appendWindow(b, sub.Window)
	b = append(b, `,"windows":`...)
	b = wire.AppendStrings(b, h.parser.Windows())
	b = append(b, `,"bounds":`...)
	b = wire.AppendFloats(b, h.acfg.Bounds)
	b = append(b, ',')
	b = append(b, h.meta...)
	b = append(b, `,"cells":[`...)
	n := 0
	for _, id := range h.ids {
		v := h.views[id]
		if !sub.Matches(v.Key) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = wire.AppendCell(b, v, sub.Window, sub.Statistic)
		n++
	}
	b = append(b, `],"events":`...)
	b = h.feed.appendTo(b)
	return append(b, '}')
}

// groupSnapshot returns the group's shared snapshot for the current seq.
func (h *Hub) groupSnapshot(g *group) *frame {
	if g.snap == nil || g.snapSeq != h.seq {
		g.snap = newFrame("snapshot", h.snapshot(nil, g.sub, ""))
		g.snapSeq = h.seq
		h.m.encoded.Inc()
	}
	return g.snap
}

// drillFrame renders a drilldown or drilldown_update frame.
func (h *Hub) drillFrame(b []byte, typ, ref string, v *aggregate.View, dr aggregate.Drill, full bool) []byte {
	b = wire.AppendHead(b, typ)
	if ref != "" {
		b = append(b, `,"ref":`...)
		b = wire.AppendString(b, ref)
	}
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, h.nowMs, 10)
	b = append(b, `,"cell":`...)
	b = wire.AppendCell(b, v, h.parser.DefaultWindow(), "all")
	if full {
		b = append(b, `,"resolution_ms":`...)
		b = strconv.AppendInt(b, h.acfg.Resolution.Milliseconds(), 10)
		b = append(b, `,"bounds":`...)
		b = wire.AppendFloats(b, dr.Bounds)
	}
	b = append(b, `,"columns":[`...)
	for i := range dr.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendColumn(b, &dr.Columns[i])
	}
	return append(b, "]}"...)
}

// fullDrill renders the complete drill-down of a cell; false if unknown.
// Caller holds h.mu.
func (h *Hub) fullDrill(id, ref string) ([]byte, bool) {
	data, _, ok := h.fullDrillBounds(id, ref)
	return data, ok
}

// fullDrillBounds is fullDrill with the bounds of its columns.
func (h *Hub) fullDrillBounds(id, ref string) ([]byte, []float64, bool) {
	v, dr, ok := h.agg.Drilldown(id, time.UnixMilli(h.nowMs), 0)
	if !ok || v == nil {
		return nil, nil, false
	}
	return h.drillFrame(nil, "drilldown", ref, v, dr, true), dr.Bounds, true
}

// join puts a client into the group for sub and queues the snapshot. The
// answer to a subscribe message (own) gets its own encoding carrying the
// request's ref; otherwise the group's shared snapshot is used. Caller
// holds h.mu.
func (h *Hub) join(c *client, sub wire.Subscription, ref string, own bool) {
	if c.group != nil {
		delete(c.group.clients, c)
		if len(c.group.clients) == 0 {
			delete(h.groups, c.group.key)
		}
	}
	k := sub.Key()
	g, ok := h.groups[k]
	if !ok {
		g = &group{key: k, sub: sub, clients: map[*client]struct{}{}}
		h.groups[k] = g
	}
	g.clients[c] = struct{}{}
	c.group = g
	if !own {
		c.replaceQueue(h.groupSnapshot(g))
		return
	}
	f := newFrame("snapshot", h.snapshot(nil, sub, ref))
	h.m.encoded.Inc()
	c.replaceQueue(f)
}

// register adds a new connection. It fails when the Hub is closed.
func (h *Hub) register(c *client, sub wire.Subscription) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.clients[c] = struct{}{}
	h.join(c, sub, "", false)
	h.m.connections.Set(float64(len(h.clients)))
	return true
}

func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	if g := c.group; g != nil {
		delete(g.clients, c)
		if len(g.clients) == 0 {
			delete(h.groups, g.key)
		}
	}
	h.stopDrill(c)
	h.m.connections.Set(float64(len(h.clients)))
}

func (h *Hub) connCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// stopDrill removes the client from its drill-down. Caller holds h.mu.
func (h *Hub) stopDrill(c *client) {
	if c.drill == "" {
		return
	}
	if d, ok := h.drills[c.drill]; ok {
		delete(d.watchers, c)
		if len(d.watchers) == 0 {
			delete(h.drills, c.drill)
		}
	}
	c.drill = ""
}

// startDrill opens a drill-down; false if the cell is unknown.
func (h *Hub) startDrill(c *client, id, ref string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	data, bounds, ok := h.fullDrillBounds(id, ref)
	if !ok {
		return false
	}
	h.stopDrill(c)
	d, ok := h.drills[id]
	if !ok {
		d = &drill{watchers: map[*client]struct{}{}, bounds: bounds}
		h.drills[id] = d
	}
	if !slices.Equal(bounds, d.bounds) {
		// The layout changed since the others opened it: they get it anew.
		if others, ok := h.fullDrill(id, ""); ok {
			f := newFrame("drilldown", others)
			for o := range d.watchers {
				o.enqueue(f)
			}
		}
		d.bounds = bounds
	}
	d.watchers[c] = struct{}{}
	c.drill = id
	h.m.encoded.Inc()
	c.enqueue(newFrame("drilldown", data))
	return true
}

// resyncFrames is what a client that fell behind gets instead of the
// deltas it missed: the current snapshot of its group and, if it has a
// drill-down open, the current full drill-down.
func (h *Hub) resyncFrames(c *client) []*frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.group == nil {
		return nil
	}
	out := []*frame{h.groupSnapshot(c.group)}
	if d, ok := h.drills[c.drill]; ok {
		if d.full == nil || d.fullSeq != h.seq {
			if data, ok := h.fullDrill(c.drill, ""); ok {
				d.full = newFrame("drilldown", data)
				d.fullSeq = h.seq
				h.m.encoded.Inc()
			}
		}
		if d.full != nil {
			out = append(out, d.full)
		}
	}
	return out
}

// Close disconnects every client with 1001 and refuses new ones. The
// writers send the close frames; a client that has not taken its frame
// within a second (a stalled one) is disconnected without it.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	clients := h.clientList()
	for _, c := range clients {
		c.closeWith(websocket.CloseGoingAway, "server shutting down", "server_shutdown")
	}
	grace := time.NewTimer(time.Second)
	defer grace.Stop()
	expired := false
	for _, c := range clients {
		if !expired {
			select {
			case <-c.done:
				continue
			case <-grace.C:
				expired = true
			}
		}
		c.finish("server_shutdown")
	}
	close(h.stop)
	h.loops.Wait()
}
