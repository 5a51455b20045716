package probeauthextension

import (
	"context"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/bantay-noc/bantay/collector/sharedstate"
	"github.com/bantay-noc/bantay/internal/events"
	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Limits of the rejection reporter. An attacker controls the claimed probe
// id and, with enough addresses, the peer; these bound what that can cost.
const (
	// reportInterval: one event (and log line) per source — (reason,
	// claimed probe, peer IP) — per interval. Refusals in between are
	// held and reported, with their count, once the interval is over.
	reportInterval = time.Minute
	// reportBurst and reportRate bound all sources together: at most
	// reportBurst events at once, refilled at one per reportRate (20 a
	// minute), so a flood from many addresses cannot fill the bus.
	reportBurst = 20
	reportRate  = 3 * time.Second
	// maxSources bounds the sources remembered; a refusal from a new
	// source beyond it is only counted (cause sources_full).
	maxSources = 1024
	// maxHold: held refusals the rate limit kept from being reported for
	// this long are given up (cause rate_limit).
	maxHold = 5 * reportInterval
	// flushEvery is how often held refusals are reported and forgotten
	// sources removed.
	flushEvery = 10 * time.Second
)

// Causes of bantay_probeauth_unreported_failures.
const (
	causeRateLimit   = "rate_limit"   // held past maxHold: the global budget was spent
	causeSourcesFull = "sources_full" // too many distinct sources
	causeShutdown    = "shutdown"     // still held when the extension shut down
)

type sourceKey struct{ reason, claimed, peer string }

type sourceState struct {
	last    time.Time // last report; zero if never reported
	pending int       // refusals held since, not reported yet
	since   time.Time // when the first of them came
}

// due is one report to make: a source's refusals since first.
type due struct {
	key   sourceKey
	count int
	first time.Time
}

// reporter turns refused requests into rate-limited probe_rejected events
// on the collector's event bus and warnings in the log. Its cost on the
// refusal path is a map lookup under a mutex; publishing never blocks (the
// bus drops when full) and happens at most reportBurst times at once.
type reporter struct {
	logger     *zap.Logger
	now        func() time.Time
	unreported metric.Int64Counter

	mu      sync.Mutex
	owner   sharedstate.Provider // nil without the bantay extension
	sources map[sourceKey]*sourceState
	budget  *rate.Limiter // shared by all sources; asked with the reporter's clock

	stop chan struct{}
	wg   sync.WaitGroup
}

func newReporter(logger *zap.Logger, unreported metric.Int64Counter) *reporter {
	return &reporter{
		logger:     logger,
		now:        time.Now,
		unreported: unreported,
		sources:    make(map[sourceKey]*sourceState),
		budget:     rate.NewLimiter(rate.Every(reportRate), reportBurst),
	}
}

// start finds the collector's event bus owner and starts reporting held
// refusals. The bus itself is asked for at each report: the bantay
// extension creates it in its own Start, which the collector may run after
// this one (but always before any receiver takes requests).
func (r *reporter) start(owner sharedstate.Provider) {
	r.mu.Lock()
	r.owner = owner
	r.mu.Unlock()
	r.stop = make(chan struct{})
	r.wg.Go(func() {
		tick := time.NewTicker(flushEvery)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
				r.flush(context.Background(), r.now())
			}
		}
	})
}

// shutdown stops reporting; refusals still held are counted as unreported
// (cause shutdown), so none is lost without a trace.
func (r *reporter) shutdown() {
	if r.stop == nil {
		return
	}
	close(r.stop)
	r.wg.Wait()
	r.stop = nil
	held := 0
	r.mu.Lock()
	for k, st := range r.sources {
		held += st.pending
		delete(r.sources, k)
	}
	r.mu.Unlock()
	if held > 0 {
		r.unreported.Add(context.Background(), int64(held), metric.WithAttributes(attribute.String("cause", causeShutdown)))
	}
}

// report records one refused request: reported at once if its source has
// not been reported within reportInterval and the budget allows, else held
// for a later report.
func (r *reporter) report(ctx context.Context, reason, claimed string, peer net.Addr) {
	// Only a claim shaped like a probe id (the metric model's) is named in
	// an event; anything else is left out.
	if metricmodel.CheckProbeID(claimed) != nil {
		claimed = ""
	}
	key := sourceKey{reason, claimed, peerHost(peer)}
	now := r.now()
	r.mu.Lock()
	st, ok := r.sources[key]
	if !ok {
		if len(r.sources) >= maxSources {
			r.mu.Unlock()
			r.unreported.Add(ctx, 1, metric.WithAttributes(attribute.String("cause", causeSourcesFull)))
			return
		}
		st = &sourceState{}
		r.sources[key] = st
	}
	if st.pending == 0 {
		st.since = now
	}
	st.pending++
	if !st.last.IsZero() && now.Sub(st.last) < reportInterval || !r.take(now) {
		r.mu.Unlock()
		return
	}
	d := due{key, st.pending, st.since}
	st.pending, st.last = 0, now
	owner := r.owner
	r.mu.Unlock()
	r.emit(owner, d)
}

// flush reports the held refusals of sources whose interval is over (as
// far as the budget allows), gives up those held past maxHold, and forgets
// sources with nothing held whose interval is over.
func (r *reporter) flush(ctx context.Context, now time.Time) {
	var reports []due
	dropped := 0
	r.mu.Lock()
	for k, st := range r.sources {
		switch {
		case !st.last.IsZero() && now.Sub(st.last) < reportInterval:
		case st.pending == 0:
			delete(r.sources, k)
		case r.take(now):
			reports = append(reports, due{k, st.pending, st.since})
			st.pending, st.last = 0, now
		case now.Sub(st.since) >= maxHold:
			dropped += st.pending
			delete(r.sources, k)
		}
	}
	owner := r.owner
	r.mu.Unlock()
	if dropped > 0 {
		r.unreported.Add(ctx, int64(dropped), metric.WithAttributes(attribute.String("cause", causeRateLimit)))
	}
	for _, d := range reports {
		r.emit(owner, d)
	}
}

// take spends one unit of the global budget, if there is one. r.mu is held.
func (r *reporter) take(now time.Time) bool {
	return r.budget.AllowN(now, 1)
}

// emit logs a report and publishes it on the bus, if there is one.
func (r *reporter) emit(owner sharedstate.Provider, d due) {
	detail := d.key.detail()
	r.logger.Warn("probeauth refused OTLP requests",
		zap.String("reason", d.key.reason), zap.String("detail", detail),
		zap.String("claimed_probe", d.key.claimed), zap.String("peer", d.key.peer),
		zap.Int("requests", d.count), zap.Time("first", d.first))
	if owner == nil {
		return
	}
	if bus := owner.Events(); bus != nil {
		bus.Publish(events.CredentialRejected(d.first, d.key.claimed, d.key.peer, d.key.reason, detail, d.count))
	}
}

// detail says what was wrong with the credential, without the token (or
// anything else from the authorization header).
func (k sourceKey) detail() string {
	switch k.reason {
	case reasonMissing:
		return "no bearer token (no authorization header)"
	case reasonMalformed:
		return "authorization header is not \"Bearer <token>\""
	case reasonWrong:
		return "bearer token is not the one registered for probe " + k.claimed
	case reasonCert:
		return "no bearer token, and the client certificate's names are no one registered probe's"
	case reasonMismatch:
		return "bearer token and client certificate belong to different registered probes"
	default:
		return "bearer token belongs to no registered probe"
	}
}

// peerHost is the client's IP address without the port (a new connection
// has a new port; the address is what identifies the client).
func peerHost(addr net.Addr) string {
	var ip net.IP
	switch a := addr.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		if a != nil {
			ip = a.IP
		}
	case *net.UDPAddr:
		if a != nil {
			ip = a.IP
		}
	case *net.IPAddr:
		if a != nil {
			ip = a.IP
		}
	default:
		return hostOf(addr.String())
	}
	if len(ip) == 0 {
		return ""
	}
	return ip.String()
}

func hostOf(s string) string {
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}
