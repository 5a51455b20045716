package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// DB is the store's TSDB as every other component sees it (the Prometheus
// API, rules, scraping, remote write, the heatmap): queryable, appendable,
// and replaceable. After a WAL write fails (a full disk) the WAL may hold a
// torn record, and the head may hold series whose records never reached the
// WAL; the only repair Prometheus offers is the one tsdb.Open runs, so the
// store closes and reopens the TSDB, and DB lets it do so while every
// component keeps its reference.
//
// A querier holds a read lock until it is closed, because closing the TSDB
// unmaps the head chunks a running query may be reading.
type DB struct {
	mu    sync.RWMutex
	db    *tsdb.DB // replaced under mu by a reopen
	stats *tsdb.DBStats
	gen   atomic.Uint64 // incremented by every reopen; appenders of an older one are stale

	store *Store // commits go through its gate
}

var (
	_ storage.Storage           = (*DB)(nil)
	_ storage.ExemplarQueryable = (*DB)(nil)
)

// Querier implements storage.Queryable.
func (d *DB) Querier(mint, maxt int64) (storage.Querier, error) {
	d.mu.RLock()
	q, err := d.db.Querier(mint, maxt)
	if err != nil {
		d.mu.RUnlock()
		return nil, err
	}
	return &heldQuerier{Querier: q, release: sync.OnceFunc(d.mu.RUnlock)}, nil
}

// ChunkQuerier implements storage.ChunkQueryable (remote read).
func (d *DB) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	d.mu.RLock()
	q, err := d.db.ChunkQuerier(mint, maxt)
	if err != nil {
		d.mu.RUnlock()
		return nil, err
	}
	return &heldChunkQuerier{ChunkQuerier: q, release: sync.OnceFunc(d.mu.RUnlock)}, nil
}

// ExemplarQuerier implements storage.ExemplarQueryable. Exemplars live in
// memory only, so the querier needs no lock while it runs.
func (d *DB) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.ExemplarQuerier(ctx)
}

// StartTime implements storage.Storage.
func (d *DB) StartTime() (int64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.StartTime()
}

// Close implements storage.Storage; the store closes the TSDB (Store.Close).
func (d *DB) Close() error { return nil }

// Appender implements storage.Appendable (the scrape manager's). Its Commit
// goes through the store's gate like an OTLP request's.
func (d *DB) Appender(ctx context.Context) storage.Appender {
	d.mu.RLock()
	defer d.mu.RUnlock()
	app := d.db.Appender(ctx)
	return &gatedAppender{Appender: app, commit: d.store.gate(d.gen.Load(), app)}
}

// AppenderV2 implements storage.AppendableV2 (the store's own, the rules
// manager's and the API's).
func (d *DB) AppenderV2(ctx context.Context) storage.AppenderV2 { return d.appenderV2(ctx) }

// appenderV2 is AppenderV2 with the generation of the TSDB it appends to,
// which the series cache's references belong to.
func (d *DB) appenderV2(ctx context.Context) *gatedAppenderV2 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	app := d.db.AppenderV2(ctx)
	gen := d.gen.Load()
	return &gatedAppenderV2{AppenderV2: app, gen: gen, commit: d.store.gate(gen, app)}
}

// withTSDB runs f on the open TSDB (status endpoints, head statistics).
func (d *DB) withTSDB(f func(*tsdb.DB, *tsdb.DBStats)) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	f(d.db, d.stats)
}

// HeadMaxTime is the newest sample time in the head, in milliseconds: the
// time the TSDB measures "too old" against for every series.
func (d *DB) HeadMaxTime() (t int64) {
	d.withTSDB(func(db *tsdb.DB, _ *tsdb.DBStats) { t = db.Head().MaxTime() })
	return t
}

type heldQuerier struct {
	storage.Querier
	release func()
}

func (q *heldQuerier) Close() error {
	defer q.release()
	return q.Querier.Close()
}

type heldChunkQuerier struct {
	storage.ChunkQuerier
	release func()
}

func (q *heldChunkQuerier) Close() error {
	defer q.release()
	return q.ChunkQuerier.Close()
}

type gatedAppender struct {
	storage.Appender
	commit func() error
}

func (a *gatedAppender) Commit() error { return a.commit() }

type gatedAppenderV2 struct {
	storage.AppenderV2
	gen    uint64
	commit func() error
}

func (a *gatedAppenderV2) Commit() error { return a.commit() }

// open opens the TSDB in dir with opts, registering its metrics through a
// registerer that can take them back, so a reopen can register them again.
func openTSDB(dir string, opts *tsdb.Options, reg *reopenRegisterer, logger *slog.Logger) (*tsdb.DB, *tsdb.DBStats, error) {
	reg.unregisterAll()
	stats := tsdb.NewDBStats()
	db, err := tsdb.Open(dir, logger.With("component", "tsdb"), reg, opts, stats)
	if err != nil {
		return nil, nil, fmt.Errorf("open TSDB in %s: %w", dir, err)
	}
	return db, stats, nil
}

// reopenRegisterer remembers what the TSDB registered, because tsdb.Open
// registers its metrics and nothing in tsdb unregisters them: a second Open
// on the same registry would panic on the duplicates.
type reopenRegisterer struct {
	prometheus.Registerer
	mu         sync.Mutex
	registered []prometheus.Collector
}

func (r *reopenRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.registered = append(r.registered, c)
	r.mu.Unlock()
	return nil
}

func (r *reopenRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *reopenRegisterer) unregisterAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.registered {
		r.Registerer.Unregister(c)
	}
	r.registered = nil
}
