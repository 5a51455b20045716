package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// maxBackfillBatch caps the samples of one backfill request (a remote's
// queue_config.max_samples_per_send, 2,000 by default, is used below it).
const maxBackfillBatch = 10_000

const (
	resultSent    = "sent"
	resultRefused = "refused"
	resultDropped = "dropped"
)

// backfillRemote is one remote_write entry of the configuration in force:
// the labels its queue would send a series with, and a client of its own
// (the queue's is not reachable from outside Prometheus's remote package).
type backfillRemote struct {
	client         remote.WriteClient
	externalLabels labels.Labels
	relabel        []*relabel.Config
	histograms     bool
	batch          int
	minBackoff     time.Duration
	maxBackoff     time.Duration
}

func newBackfillRemotes(cfg *config.Config) ([]*backfillRemote, error) {
	var remotes []*backfillRemote
	for i, rwc := range cfg.RemoteWriteConfigs {
		name := rwc.Name
		if name == "" {
			name = fmt.Sprintf("backfill-%d", i)
		}
		// Version 1 of the protocol whatever the queue speaks: every
		// receiver of version 2 also takes version 1, and the backfill sends
		// no metadata, which is what version 2 adds.
		c, err := remote.NewWriteClient(name, &remote.ClientConfig{
			URL: rwc.URL, Timeout: rwc.RemoteTimeout, HTTPClientConfig: rwc.HTTPClientConfig,
			SigV4Config: rwc.SigV4Config, AzureADConfig: rwc.AzureADConfig, GoogleIAMConfig: rwc.GoogleIAMConfig,
			Headers: rwc.Headers, RetryOnRateLimit: rwc.QueueConfig.RetryOnRateLimit,
			WriteProtoMsg: remoteapi.WriteV1MessageType, RoundRobinDNS: rwc.RoundRobinDNS,
		})
		if err != nil {
			return nil, fmt.Errorf("remote_write %d (%s): backfill client: %w", i, rwc.URL, err)
		}
		remotes = append(remotes, &backfillRemote{
			client: c, externalLabels: cfg.GlobalConfig.ExternalLabels, relabel: rwc.WriteRelabelConfigs,
			histograms: rwc.SendNativeHistograms,
			batch:      min(max(rwc.QueueConfig.MaxSamplesPerSend, 1), maxBackfillBatch),
			minBackoff: time.Duration(rwc.QueueConfig.MinBackoff), maxBackoff: time.Duration(rwc.QueueConfig.MaxBackoff),
		})
	}
	return remotes, nil
}

// readSeries is one series' samples of a range, copied out of the TSDB.
type readSeries struct {
	labels     labels.Labels
	samples    []prompb.Sample
	histograms []prompb.Histogram
}

// sendRange reads rng from the TSDB (every series, or only the one with
// labels only) and sends it to every remote, returning the samples read.
// Samples the remote already has are sent again: a receiver's TSDB takes a
// sample identical to one it holds as a no-op, in order or out of order, so
// duplicates cost bandwidth, never data (docs/decisions.md). The error is
// only ever ctx's: a read that fails is retried, a request the remote
// refuses for good is counted and skipped.
func (b *remoteBackfill) sendRange(ctx context.Context, reason string, rng timeRange, only labels.Labels) (int, error) {
	var series []readSeries
	for {
		var err error
		if series, err = b.read(ctx, rng, only); err == nil {
			break
		}
		b.logger.Warn("remote-write backfill: reading the TSDB failed; retrying", "from", timestamp.Time(rng.mint), "to", timestamp.Time(rng.maxt), "err", err)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backfillInterval):
		}
	}
	n := 0
	for _, s := range series {
		n += len(s.samples) + len(s.histograms)
	}
	b.mu.Lock()
	remotes := b.remotes
	b.mu.Unlock()
	for _, r := range remotes {
		if err := b.sendTo(ctx, reason, r, series); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (b *remoteBackfill) read(ctx context.Context, rng timeRange, only labels.Labels) ([]readSeries, error) {
	q, err := b.db.Querier(rng.mint, rng.maxt)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	matchers := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	if !only.IsEmpty() {
		matchers = matchers[:0]
		only.Range(func(l labels.Label) {
			matchers = append(matchers, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
		})
	}
	set := q.Select(ctx, false, &storage.SelectHints{Start: rng.mint, End: rng.maxt}, matchers...)
	var (
		out []readSeries
		it  chunkenc.Iterator
	)
	for set.Next() {
		s := set.At()
		if !only.IsEmpty() && !labels.Equal(s.Labels(), only) {
			continue // a series with more labels than the late one
		}
		var rs readSeries
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				rs.samples = append(rs.samples, prompb.Sample{Timestamp: t, Value: v})
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				rs.histograms = append(rs.histograms, prompb.FromIntHistogram(t, h))
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				rs.histograms = append(rs.histograms, prompb.FromFloatHistogram(t, fh))
			}
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		if len(rs.samples)+len(rs.histograms) > 0 {
			// Copied: a block's labels may point into its mmapped index,
			// which the querier's Close releases.
			rs.labels = s.Labels().Copy()
			out = append(out, rs)
		}
	}
	return out, set.Err()
}

// sendTo sends series to r in batches of r.batch samples, labelled as r's
// queue labels them: external labels the series lacks, then
// write_relabel_configs.
func (b *remoteBackfill) sendTo(ctx context.Context, reason string, r *backfillRemote, series []readSeries) error {
	var (
		batch   []prompb.TimeSeries
		n       int
		builder = labels.NewBuilder(labels.EmptyLabels())
	)
	flush := func() error {
		if n == 0 {
			return nil
		}
		err := b.store(ctx, r, batch, n)
		switch {
		case err == nil:
			b.samples.WithLabelValues(reason, resultSent).Add(float64(n))
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			b.samples.WithLabelValues(reason, resultRefused).Add(float64(n))
			b.logger.Warn("remote-write backfill: the remote refused a request for good", "remote", r.client.Name(), "samples", n, "err", err)
		}
		batch, n = batch[:0], 0
		return nil
	}
	for _, s := range series {
		builder.Reset(s.labels)
		r.externalLabels.Range(func(l labels.Label) {
			if builder.Get(l.Name) == "" {
				builder.Set(l.Name, l.Value)
			}
		})
		if !relabel.ProcessBuilder(builder, r.relabel...) {
			b.samples.WithLabelValues(reason, resultDropped).Add(float64(len(s.samples) + len(s.histograms)))
			continue
		}
		lbls := prompb.FromLabels(builder.Labels(), nil)
		hs := s.histograms
		if !r.histograms && len(hs) > 0 {
			b.samples.WithLabelValues(reason, resultDropped).Add(float64(len(hs)))
			hs = nil
		}
		// A series longer than a batch is split over several.
		for fs := s.samples; len(fs) > 0 || len(hs) > 0; {
			room := r.batch - n
			take := min(room, len(fs))
			ts := prompb.TimeSeries{Labels: lbls, Samples: fs[:take]}
			fs = fs[take:]
			takeH := min(room-take, len(hs))
			ts.Histograms, hs = hs[:takeH], hs[takeH:]
			batch, n = append(batch, ts), n+take+takeH
			if n >= r.batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// store sends one request, retrying what the remote says is recoverable
// with the queue's backoff, as the queue does.
func (b *remoteBackfill) store(ctx context.Context, r *backfillRemote, series []prompb.TimeSeries, n int) error {
	if err := b.limiter.WaitN(ctx, n); err != nil {
		return err
	}
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		return err
	}
	req := snappy.Encode(nil, raw)
	backoff := max(r.minBackoff, 10*time.Millisecond) // never a busy loop
	for attempt := 0; ; attempt++ {
		_, err := r.client.Store(ctx, req, attempt)
		var recoverable remote.RecoverableError
		if err == nil || !errors.As(err, &recoverable) {
			return err
		}
		b.logger.Debug("remote-write backfill: retrying", "remote", r.client.Name(), "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.maxBackoff)
	}
}
